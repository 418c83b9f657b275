"""The signature-verifier's pure domain: commit signatures and signing keys (no I/O)."""

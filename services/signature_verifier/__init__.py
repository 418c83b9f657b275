"""The signature-verifier service: git repositories, GPG keys and commit signature verification."""

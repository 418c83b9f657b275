"""The scanner's pure domain: versions and OSV ranges, SBOM and lockfile readers, licenses,
VEX rules. No I/O here: callers hand in bytes or a file tree and get values back."""

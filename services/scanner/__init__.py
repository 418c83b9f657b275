"""The scanner service: SBOM and lockfile scans, vulnerability database, findings, licenses."""

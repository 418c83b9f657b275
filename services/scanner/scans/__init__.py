"""Scans: SBOM and source uploads, the scan lifecycle, components and findings."""

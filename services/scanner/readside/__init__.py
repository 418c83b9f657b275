"""Reports on a project's snapshots: licenses, policy gate, diff, SBOM and notice."""

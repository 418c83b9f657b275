"""The artifact registry's metadata: repositories, artifacts, blocks and the quarantine."""

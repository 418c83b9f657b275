"""The release-decision service: release decisions, promotions, release candidates and deployments."""

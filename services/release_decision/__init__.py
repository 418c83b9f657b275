"""The release-decision service: decisions, promotions, release candidates and deployments."""

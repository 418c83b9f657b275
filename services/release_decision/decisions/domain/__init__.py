"""The release gate's pure rules: the effective decision policy and ``evaluate``."""

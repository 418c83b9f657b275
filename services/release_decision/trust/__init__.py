"""trust part of the release-decision service."""

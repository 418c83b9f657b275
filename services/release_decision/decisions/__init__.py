"""decisions part of the release-decision service."""

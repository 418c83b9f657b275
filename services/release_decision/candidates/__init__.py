"""candidates part of the release-decision service."""

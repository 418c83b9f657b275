"""scm part of the release-decision service."""

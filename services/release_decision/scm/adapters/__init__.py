"""I/O of the scm part: the GitHub REST client."""

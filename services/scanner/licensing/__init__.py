"""License policy: org default and project overrides, waivers, and the re-evaluation of a
snapshot's license categories when either changes (see ``projection.py``)."""

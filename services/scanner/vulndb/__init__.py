"""The vulnerability database: OSV advisories and EPSS scores, imported, projected, and held
in memory as the matcher every scan uses.

Flow: an upload (gateway ``POST /api/v1/vulndb/import`` / ``epss``, or ``gatehouse vulndb
import|epss PATH``) is stored as a blob; ``svc.scanner.vulndb_import`` / ``vulndb_epss``
reads it, refuses it whole or plans it (``bundle``, ``epss``), publishes ``vulndb.updated``
and answers once applied. The ``vulndb`` projection applies the event from the same blob
(``projection``, ``store``); ``memory.VulnDb`` follows the committed tables.

Interface for scans: ``runtime.state["vulndb"]`` is a :class:`memory.VulnDb` with

``index: AdvisoryIndex``
    The matcher (``services.scanner.domain.advisory_index``): ``index.match(components)``,
    ``index.group_of(id)``, ``index.group_members(id)``. Withdrawn advisories are
    tombstones and never match. It is changed only on the event loop's thread, between
    awaits: call it from the event loop (a synchronous ``match`` runs to completion
    undisturbed), never from another thread.
``epss(ids) -> dict[str, tuple[float, float]]``
    ``(score, percentile)`` for those of ``ids`` (CVE ids) that have a score.
``epss_as_of: datetime.date | None``
    Score date of the newest EPSS data held.
``version: int``
    The stream sequence of the last ``vulndb.updated`` the index reflects (the ``vulndb``
    projection's checkpoint when it was read); it only grows.
``async wait_loaded()``
    Returns once the database has been loaded at start (``/health/ready`` waits for it too).
``async wait_for(sequence, *, timeout)``
    Returns once ``version >= sequence`` (TimeoutError otherwise): a re-match triggered by
    the ``vulndb.updated`` at stream sequence ``S`` calls ``wait_for(S)`` first, so it
    matches against that import.

Re-matching: ``vulndb.updated`` (``source == "osv"``) carries ``changed_advisory_ids`` and
``changed_packages`` (``PackageRef(ecosystem, package)`` keyed like
``package_ids.package_id``), or ``rematch_all`` when there were too many to list; the scans
part turns that into re-match jobs. An EPSS import (``source == "epss"``) changes no match.
"""

"""Every event payload of the catalog. Importing this package registers them all."""

from contracts.events import identity, licensing, scans, vulndb  # noqa: F401

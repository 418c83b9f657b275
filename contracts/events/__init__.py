"""Every event payload of the catalog. Importing this package registers them all."""

from contracts.events import (  # noqa: F401
    commits,
    deployments,
    identity,
    licensing,
    operations,
    registry,
    releases,
    scans,
    scm,
    signatures,
    vulndb,
    webhooks,
)

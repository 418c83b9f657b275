"""Metrics of the package protocols, declared once."""

from __future__ import annotations

from prometheus_client import Counter

UPLOADS = Counter(
    "gatehouse_gateway_artifact_uploads_total",
    "Artifact uploads by format and outcome (stored, or the problem code that refused it)",
    ["format", "outcome"],
)
UPLOAD_BYTES = Counter(
    "gatehouse_gateway_artifact_upload_bytes_total",
    "Bytes of artifacts stored by uploads",
    ["format"],
)
DOWNLOADS = Counter(
    "gatehouse_gateway_artifact_downloads_total",
    "Artifact downloads answered with content (download.recorded)",
    ["format"],
)
DOWNLOAD_BYTES = Counter(
    "gatehouse_gateway_artifact_download_bytes_total",
    "Bytes of artifacts sent",
    ["format"],
)
REFUSED_DOWNLOADS = Counter(
    "gatehouse_gateway_artifact_downloads_refused_total",
    "Downloads refused with 451, by verdict (blocked, quarantined)",
    ["format", "verdict"],
)

"""Typed settings read from ``GATEHOUSE_*`` environment variables, in one place.

Every field of :class:`Settings` is read from the upper-cased variable of the same name
with the ``GATEHOUSE_`` prefix (``http_port`` ← ``GATEHOUSE_HTTP_PORT``). A value that does
not convert fails fast with the variable's name.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

PREFIX = "GATEHOUSE_"

# Out-of-range values fail at start-up with the variable's name, not later in a loop.
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
NotNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
PerSecond = Annotated[float, msgspec.Meta(gt=0)]


class SettingsError(ValueError):
    pass


BANNER_MAX = 500
# Control characters (line breaks included) and markup: public config texts are one line of
# plain text that a UI may place in a page.
_NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f-\x9f<>]")
_HELP_URL = re.compile(r"https?://[^\s<>\"]+")


# Fields that hold secrets: shown as *** by Settings' repr.
SECRET_FIELDS = frozenset(
    {
        "nats_password",
        "bootstrap_token",
        "github_webhook_secret",
        "github_token",
        "gitlab_webhook_token",
        "git_credentials",
        "s3_secret_access_key",
    }
)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Which service this process runs (set by `gatehouse serve <service>`).
    service: str = "gateway"
    nats_url: str = "nats://127.0.0.1:4222"
    # This process's NATS user and password (empty: connect without authentication, which
    # only a development server should accept; see "Security: who may publish" in the
    # README). `gatehouse up` sets them per service.
    nats_user: str = ""
    nats_password: str = ""
    # CA bundle that signs the NATS server's certificate, for a `tls://` URL (empty: the
    # system's trusted CAs).
    nats_ca_file: str = ""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/gatehouse"
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    # A listening socket inherited from `gatehouse up`, which holds the port it chose
    # (-1: bind http_host:http_port).
    http_fd: Annotated[int, msgspec.Meta(ge=-1)] = -1
    # Told by /health/ready (`instance`), so that `gatehouse up` knows the server answering
    # is its own (empty: a random one per process).
    instance_id: str = ""
    # Public base URL of the gateway, used in Link headers and printed by `gatehouse up`.
    public_url: str = ""
    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"
    stream_name: str = "GATEHOUSE"
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    data_dir: str = ".gatehouse"
    # Deadline for gateway -> service request/reply calls.
    rpc_timeout_seconds: Seconds = 5.0
    # How long a write waits for its own projection before answering 504.
    read_your_writes_timeout_seconds: Seconds = 10.0
    max_body_bytes: AtLeastOne = 1_048_576
    # Largest upload (SBOM, source zip, OSV zip, EPSS CSV): stored as a blob, not held as JSON.
    max_upload_bytes: AtLeastOne = 64 * 1_048_576
    rate_limit_per_token: PerSecond = 50.0
    rate_limit_per_ip: PerSecond = 20.0
    rate_limit_burst: AtLeastOne = 200
    # Failed authentications per client address (the TCP peer) before tokens that the replica
    # has not seen valid are refused with 429 without a database lookup; refilled per second.
    auth_failure_burst: AtLeastOne = 20
    auth_failures_per_ip: PerSecond = 1.0
    # Readiness fails when a projection is further behind the stream than this.
    max_ready_lag: NotNegative = 10_000
    projection_batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256
    # Tries of one batch that may fail "transiently" (a lost connection) before the runner
    # applies its events one by one and dead-letters the one at fault (if the database and
    # the bus answer: an outage is waited out, never dead-lettered).
    projection_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    bootstrap_token: str = ""
    bootstrap_token_file: str = ""
    db_pool_min: NotNegative = 1
    db_pool_max: AtLeastOne = 10
    # Most rows one GET /api/v1/audit/export.csv streams (X-Export-Truncated says when cut).
    audit_export_max_rows: AtLeastOne = 100_000
    # Largest SBOM document accepted for a scan (413 above; also bounded by max_upload_bytes).
    max_sbom_bytes: AtLeastOne = 32 * 1_048_576
    # Requests per second per API key or client address on the package routes (/pypi/...,
    # /generic/...), and the burst above it: pip asks for two or three files per package,
    # one after the other, far beyond the JSON API's rates (429 with Retry-After above).
    artifact_rate_limit: PerSecond = 500.0
    artifact_rate_limit_burst: AtLeastOne = 2000
    # A wheel or sdist whose entries expand beyond this is refused before it is read (400
    # archive_too_expanded: a zip bomb); the compression ratio is bounded as well.
    artifact_max_expanded_bytes: AtLeastOne = 8192 * 1_048_576
    # EPSS probability at or above which a finding blocks by default and is announced with
    # finding.threshold-exceeded.
    epss_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.1
    # /health/backup says `stale` when the newest successful backup is older than this.
    backup_max_age_hours: Annotated[float, msgspec.Meta(gt=0)] = 26.0
    # A job's lease: a worker that dies mid-job is replaced this long after its last renewal.
    job_lease_seconds: Seconds = 30.0
    # Claims of a background job (a failed attempt or a worker that died under it) before it
    # ends `failed` for an operator (`gatehouse jobs`); a job with a give-up gets as many
    # more for it. Transient failures count only while the database and the bus answer.
    job_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    # Testing and diagnostics: the scan worker pauses this long after each stage (0: never).
    scan_stage_pause_seconds: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    # A scan reads its upload in a child process limited to this address space (RLIMIT_AS,
    # virtual memory: the child starts at ~60 MiB, a 10,000-component SBOM peaks at ~120 MiB
    # and a 32 MiB one at ~280 MiB) and this wall-clock time; beyond either the scan fails
    # `too_large`. 0 bytes: read in a thread of the scanner itself, unbounded (debugging).
    scan_read_memory_bytes: NotNegative = 2048 * 1_048_576
    scan_read_seconds: Seconds = 60.0
    # Inbound GitHub webhooks: the secret X-Hub-Signature-256 is checked against (empty:
    # the endpoint refuses every delivery).
    github_webhook_secret: str = ""
    # Outbound GitHub REST calls (check runs, PR comments): base URL and token (empty: none).
    github_api_url: str = "https://api.github.com"
    github_token: str = ""
    # Inbound GitLab webhooks: the X-Gitlab-Token expected (empty: refuse every delivery).
    gitlab_webhook_token: str = ""
    # Largest inbound webhook body (413 above).
    webhook_max_body_bytes: AtLeastOne = 1_048_576
    # PEM file of the Ed25519 key that signs decision attestations (empty: one is generated
    # on the first start and kept in the release-decision database).
    signing_key_file: str = ""
    # Decisions the gateway keeps hot in memory (kept current by release.decided).
    decision_cache_size: NotNegative = 100_000
    # Every outbound connection (git fetches, ...) refuses loopback, private, link-local,
    # multicast, reserved and cloud-metadata addresses, except inside these CIDRs
    # (comma-separated, e.g. "10.20.0.0/16,fd12::/64"; empty: none). See shared/outbound.py.
    outbound_allow_cidrs: str = ""
    # Git mirrors may be cloned from file:// URLs and plain local paths (air-gapped sites,
    # tests); off by default, since a path reads the server's own disk.
    git_allow_file_urls: bool = False
    # Every mirror is fetched this often besides on pushes and syncs (0: never).
    git_fetch_interval_seconds: NotNegative = 300
    # Tokens a mirror may name as its `credential`: "name=token,other=token" or a JSON
    # object {"name": "token"}; a value "user:token" also names the user. Never logged.
    git_credentials: str = ""
    # A fetch taking longer than this fails (the old mirror is kept).
    git_fetch_timeout_seconds: Seconds = 600.0
    # Webhook deliveries: every wait of the retry schedule (Retry-After included) is
    # multiplied by this (tests: 0.001 makes the three-day schedule a few minutes' worth of
    # milliseconds; 1: the schedule as documented).
    webhook_retry_schedule_scale: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    # A sender's claim on a delivery: another replica takes over this long after the last
    # renewal of a sender that died (renewed every third of it while sending).
    webhook_lease_seconds: Seconds = 60.0
    # Subscriptions one sender delivers to at once (each strictly in order), and open
    # connections per receiver host:port.
    webhook_max_in_flight: AtLeastOne = 256
    webhook_per_host_limit: AtLeastOne = 32
    # Commits API pages and commits the gateway keeps hot (0: off), dropped by the events
    # that change them and after 30 s at the most.
    commits_cache_size: NotNegative = 10_000
    # Registry answers (simple indexes, allowed downloads) the gateway keeps hot (0: off),
    # dropped by the repository.*, artifact.* and block.* events that change them.
    registry_cache_size: NotNegative = 10_000
    # Small artifact blobs (wheels, METADATA files up to 256 KiB) the gateway keeps in memory
    # by digest (0: off): content-addressed, so never stale.
    artifact_memory_cache_bytes: NotNegative = 32 * 1024 * 1024
    # Every enabled retention policy is also run this often (0: only when asked to, with
    # POST /api/v1/repos/{id}/retention/{policy_id}/run).
    retention_interval_seconds: NotNegative = 0
    # Where artifact bytes (wheels, sdists, generic files) live: "filesystem" (files under
    # artifact_dir) or "s3" (an S3-compatible object store: AWS S3, MinIO, ...).
    artifact_store: Literal["filesystem", "s3"] = "filesystem"
    # The filesystem store's root, and with either store the staging directory of uploads
    # in flight (empty: <data_dir>/artifacts).
    artifact_dir: str = ""
    # Largest artifact upload (413 `artifact_too_large` above).
    artifact_max_upload_bytes: AtLeastOne = 5 * 1024**3
    # The S3 store: endpoint (path-style: <endpoint>/<bucket>/<key>), bucket (created by the
    # operator, not by Gatehouse), region signed into requests, credentials, and a key prefix
    # (objects are <prefix>sha256/<hex>).
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_prefix: str = ""
    # Part size of multipart uploads (objects above 5 GiB); S3 needs at least 5 MiB.
    s3_multipart_part_bytes: Annotated[int, msgspec.Meta(ge=5 * 1024**2, le=5 * 1024**3)] = (
        64 * 1024**2
    )

    # Shown to every client by /api/public-config (unauthenticated): a link to the
    # operator's help page (an http(s) URL) and a one-line notice such as a maintenance
    # window (plain text: no markup or control characters, at most 500 characters).
    help_url: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    banner: Annotated[str, msgspec.Meta(max_length=BANNER_MAX)] = ""

    def __post_init__(self) -> None:
        _check_public_texts(self)
        if self.db_pool_min > self.db_pool_max:
            raise ValueError(
                f"db_pool_min ({self.db_pool_min}) must not exceed db_pool_max ({self.db_pool_max})"
            )
        if self.artifact_store == "s3":
            missing = [
                env_name(name)
                for name in (
                    "s3_endpoint_url",
                    "s3_bucket",
                    "s3_access_key_id",
                    "s3_secret_access_key",
                )
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"{env_name('artifact_store')}=s3 needs {', '.join(missing)}")
            if not self.s3_endpoint_url.startswith(("http://", "https://")):
                raise ValueError(
                    f"{env_name('s3_endpoint_url')} must be an http:// or https:// URL"
                )

    def __repr__(self) -> str:
        # Secrets never reach a log line or a traceback through repr().
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            hidden = name in SECRET_FIELDS and value
            shown.append(f"{name}={'***' if hidden else repr(value)}")
        return f"Settings({', '.join(shown)})"

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked by the same rules as the environment."""
        return _validated({**msgspec.structs.asdict(self), **changes})


def _check_public_texts(settings: Settings) -> None:
    if _NOT_PLAIN.search(settings.banner):
        raise ValueError(
            f"{env_name('banner')} is one line of plain text: no control characters, < or >"
        )
    if settings.help_url and (
        not _HELP_URL.fullmatch(settings.help_url) or _NOT_PLAIN.search(settings.help_url)
    ):
        raise ValueError(f"{env_name('help_url')} must be an http:// or https:// URL")


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        name = env_name(field.name)
        if name in env:
            raw[field.name] = env[name]
    raw.update(overrides)
    return _validated(raw)


def _validated(raw: Mapping[str, Any]) -> Settings:
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # "Expected `int`, got `str` - at `$.http_port`" -> name the variable, not the path.
        message = str(exc)
        for field in msgspec.structs.fields(Settings):
            if f"`$.{field.name}`" in message:
                raise SettingsError(f"{env_name(field.name)}: {message}") from None
        raise SettingsError(message) from None
    except ValueError as exc:  # __post_init__'s cross-field rules
        raise SettingsError(str(exc)) from None


def documented_settings() -> list[tuple[str, str, Any]]:
    """(variable, type, default) for the README table."""
    out = []
    for field in msgspec.structs.fields(Settings):
        out.append((env_name(field.name), _type_name(field.type), field.default))
    return out


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return " | ".join(repr(v) for v in typing.get_args(annotation))
    return str(getattr(annotation, "__name__", annotation))

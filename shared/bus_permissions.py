"""Who may publish and subscribe what on NATS: the permission model, as pure functions.

JetStream is the system of record, so a process that can publish ``release.decided`` can
turn a NO_SHIP into SHIP. Every service therefore connects as its own NATS user whose
permissions allow publishing only the event types it owns (:data:`DOMAIN_OWNERS`,
:data:`EVENT_OWNERS`, checked against the catalog by a test), the request/reply subjects it
calls, and the JetStream API of the stream and the blob bucket; the ``ops`` user (the
``gatehouse`` CLI: imports, replay, backup, dead letters) may do everything; an external
subscriber may only read public domains through one durable consumer named after it.

:func:`server_config` renders a nats-server configuration (NATS' config format accepts
JSON) from :class:`NatsUser` entries; ``gatehouse up`` keeps the users in
``<data_dir>/nats-auth.json`` and writes the config next to it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from contracts import events as _events  # noqa: F401  (registers the catalog)
from contracts.envelope import registry, subject_for

# The six services of `services.registry` (shared/ may not import services/; a test holds
# the two lists equal).
SERVICE_USERS: tuple[str, ...] = (
    "audit",
    "scanner",
    "signature-verifier",
    "release-decision",
    "webhook-fanout",
    "gateway",
)
# The operator: the `gatehouse` CLI commands that import, replay, back up and restore.
OPS_USER = "ops"

# The service that owns (publishes) each event domain; an event type may override below.
DOMAIN_OWNERS: dict[str, tuple[str, ...]] = {
    "apikey": ("gateway",),
    "project": ("gateway",),
    "user": ("gateway",),
    "scan": ("scanner",),
    "finding": ("scanner",),
    "license": ("scanner",),
    "vulndb": ("scanner",),
    # The scanner's license policy and release-decision's decision policy.
    "policy": ("scanner", "release-decision"),
    "release": ("release-decision",),
    "deployment": ("release-decision",),
    "environment": ("release-decision",),
    "scm": ("release-decision",),
    "commit": ("release-decision",),
    "artifact": ("scanner",),
    "block": ("scanner",),
    "repository": ("scanner",),
    "quota": ("scanner",),
    "retention": ("scanner",),
    # Who pulled what: the gateway serves the downloads.
    "download": ("gateway",),
    "serviceaccount": ("gateway",),
    "gpgkey": ("signature-verifier",),
    "sshkey": ("signature-verifier",),
    "mirror": ("signature-verifier",),
    "webhook": ("webhook-fanout",),
    # `gatehouse backup` / `restore` run as the operator.
    "backup": (OPS_USER,),
}
EVENT_OWNERS: dict[str, tuple[str, ...]] = {
    "commit.verified": ("signature-verifier",),
    # GitHub/GitLab webhooks (release-decision) and fetches of git mirrors.
    "commit.pushed": ("release-decision", "signature-verifier"),
    # The gateway refuses the download, so it tells of it.
    "block.hit": ("gateway",),
}

# Request/reply: whom each service calls (`svc.<callee>.<operation>`). The gateway is the
# edge and calls every owner; release-decision's health asks every service for its dead
# letters and pings it.
RPC_CALLS: dict[str, tuple[str, ...]] = {
    "gateway": ("svc.*.>", "$SRV.>"),
    "release-decision": ("svc.*.dead_letters", "$SRV.PING.>", "$SRV.PING"),
}

# Domains an external subscriber may be granted: the public catalog, not identities
# (apikey, user), SCM deliveries or operations.
PUBLIC_DOMAINS: tuple[str, ...] = (
    "artifact",
    "block",
    "commit",
    "deployment",
    "environment",
    "finding",
    "gpgkey",
    "license",
    "mirror",
    "policy",
    "project",
    "quota",
    "release",
    "repository",
    "retention",
    "scan",
    "sshkey",
    "vulndb",
)
DEFAULT_SUBSCRIBER_SUBJECTS: tuple[str, ...] = ("artifact.>", "finding.>", "release.>")

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_SUBJECT_TOKEN = re.compile(r"^([a-z0-9-]+|\*|>)$")

Role = Literal["service", "ops", "subscriber"]


class SubscriberRefused(ValueError):
    """A subscriber name or subject that the model refuses."""


class NatsUser(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    password: str
    role: Role
    # For subscribers: the public subjects they may read.
    subjects: tuple[str, ...] = ()


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Lets a service answer requests (RPC replies, acks) on the requester's reply subject.
    allow_responses: bool = False


def owners(event_type: str) -> tuple[str, ...]:
    """The users allowed to publish ``event_type``; KeyError when no owner is declared."""
    if event_type in EVENT_OWNERS:
        return EVENT_OWNERS[event_type]
    return DOMAIN_OWNERS[event_type.split(".", 1)[0]]


def event_types() -> list[str]:
    return sorted({event_type for event_type, _ in registry()})


def undeclared_event_types() -> list[str]:
    """Catalog event types with no declared owner (a test keeps this empty)."""
    missing = []
    for event_type in event_types():
        try:
            owners(event_type)
        except KeyError:
            missing.append(event_type)
    return missing


def published_subjects(user: str) -> list[str]:
    """The event subjects ``user`` may publish, one per owned event type of the catalog."""
    return [subject_for(t) for t in event_types() if user in owners(t)]


def blob_bucket(stream: str) -> str:
    return f"{stream}_BLOBS"


def jetstream_subjects(stream: str) -> list[str]:
    """The JetStream API a service needs for the event stream and the blob bucket: stream
    info/create/update (never delete or purge of the event stream), consumers, acks, the
    object store. Consumer names are not scoped per service (NATS wildcards match whole
    tokens and durable names carry the service's schema as a prefix only)."""
    bucket_stream = f"OBJ_{blob_bucket(stream)}"
    found = ["$JS.API.INFO", "$JS.API.STREAM.NAMES"]
    for name in (stream, bucket_stream):
        found += [
            f"$JS.API.STREAM.INFO.{name}",
            f"$JS.API.STREAM.CREATE.{name}",
            f"$JS.API.STREAM.UPDATE.{name}",
            f"$JS.API.STREAM.MSG.GET.{name}",
            f"$JS.API.DIRECT.GET.{name}",
            f"$JS.API.DIRECT.GET.{name}.>",
            f"$JS.API.CONSUMER.CREATE.{name}",
            f"$JS.API.CONSUMER.CREATE.{name}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{name}.>",
            f"$JS.API.CONSUMER.INFO.{name}.>",
            f"$JS.API.CONSUMER.DELETE.{name}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{name}.>",
            f"$JS.ACK.{name}.>",
            f"$JS.FC.{name}.>",
        ]
    # Blobs: chunks and metadata are published to the bucket's subjects; replacing an
    # object's metadata purges the old chunks (content-addressed, so only the same bytes).
    found += [f"$O.{blob_bucket(stream)}.>", f"$JS.API.STREAM.PURGE.{bucket_stream}"]
    return found


def service_permissions(service: str, *, stream: str) -> Permissions:
    if service not in SERVICE_USERS:
        raise KeyError(f"unknown service {service!r}")
    publish = [
        *published_subjects(service),
        *RPC_CALLS.get(service, ()),
        *jetstream_subjects(stream),
    ]
    subscribe = ["_INBOX.>", f"svc.{service}.>", "$SRV.>"]
    return Permissions(publish=tuple(publish), subscribe=tuple(subscribe), allow_responses=True)


def ops_permissions() -> Permissions:
    return Permissions(publish=(">",), subscribe=(">",), allow_responses=True)


def subscriber_permissions(name: str, subjects: Sequence[str], *, stream: str) -> Permissions:
    """Read-only: core subscriptions on ``subjects``, and one durable consumer named ``name``
    whose filter is one of ``subjects`` (the filter travels in the create subject). No
    publish of any event, no other consumer, no stream message reads."""
    checked = check_subscriber(name, subjects)
    publish = [
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{stream}",
        *(f"$JS.API.CONSUMER.CREATE.{stream}.{name}.{subject}" for subject in checked),
        f"$JS.API.CONSUMER.INFO.{stream}.{name}",
        f"$JS.API.CONSUMER.DELETE.{stream}.{name}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]
    return Permissions(publish=tuple(publish), subscribe=("_INBOX.>", *checked))


def check_subscriber(name: str, subjects: Iterable[str]) -> tuple[str, ...]:
    """The subscriber's subjects, each inside a public domain; raises on anything else."""
    if not _NAME.match(name) or name in SERVICE_USERS or name == OPS_USER:
        raise SubscriberRefused(
            f"subscriber name {name!r} must be lower-case letters, digits and '-', start with "
            f"a letter, and not be a service or {OPS_USER!r}"
        )
    checked: list[str] = []
    for subject in subjects:
        tokens = subject.split(".")
        if not all(_SUBJECT_TOKEN.match(t) for t in tokens) or ">" in tokens[:-1]:
            raise SubscriberRefused(f"{subject!r} is not a NATS subject of the event catalog")
        if tokens[0] not in PUBLIC_DOMAINS:
            raise SubscriberRefused(
                f"{subject!r} is outside the public catalog; a subscriber may read "
                f"{', '.join(d + '.>' for d in PUBLIC_DOMAINS)}"
            )
        if subject not in checked:
            checked.append(subject)
    if not checked:
        raise SubscriberRefused("a subscriber needs at least one subject")
    return tuple(checked)


def permissions_of(user: NatsUser, *, stream: str) -> Permissions:
    if user.role == "service":
        return service_permissions(user.name, stream=stream)
    if user.role == "ops":
        return ops_permissions()
    return subscriber_permissions(user.name, user.subjects, stream=stream)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def default_users() -> list[NatsUser]:
    """A user with a fresh random password for every service and the operator."""
    users = [NatsUser(name=s, password=new_password(), role="service") for s in SERVICE_USERS]
    users.append(NatsUser(name=OPS_USER, password=new_password(), role="ops"))
    return users


def authorization_block(users: Iterable[NatsUser], *, stream: str) -> dict[str, Any]:
    """The ``authorization`` section of a nats-server config."""
    entries = []
    for user in users:
        permissions = permissions_of(user, stream=stream)
        rules: dict[str, Any] = {
            "publish": {"allow": list(permissions.publish)},
            "subscribe": {"allow": list(permissions.subscribe)},
        }
        if permissions.allow_responses:
            rules["allow_responses"] = True
        entries.append({"user": user.name, "password": user.password, "permissions": rules})
    return {"users": entries}


def server_config(
    users: Iterable[NatsUser], *, stream: str, extra: Mapping[str, Any] | None = None
) -> str:
    """A whole nats-server config (JSON is valid NATS config syntax)."""
    config: dict[str, Any] = dict(extra or {})
    config["authorization"] = authorization_block(users, stream=stream)
    return json.dumps(config, indent=2, sort_keys=True) + "\n"

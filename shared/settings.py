"""Typed settings read from ``GATEHOUSE_*`` environment variables, in one place.

Every field of :class:`Settings` is read from the upper-cased variable of the same name
with the ``GATEHOUSE_`` prefix (``http_port`` ← ``GATEHOUSE_HTTP_PORT``). A value that does
not convert fails fast with the variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

PREFIX = "GATEHOUSE_"


class SettingsError(ValueError):
    pass


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Which service this process runs (set by `gatehouse serve <service>`).
    service: str = "gateway"
    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/gatehouse"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Public base URL of the gateway, used in Link headers and printed by `gatehouse up`.
    public_url: str = ""
    log_level: str = "info"
    log_format: str = "json"
    stream_name: str = "GATEHOUSE"
    stream_replicas: int = 1
    data_dir: str = ".gatehouse"
    # Deadline for gateway -> service request/reply calls.
    rpc_timeout_seconds: float = 5.0
    # How long a write waits for its own projection before answering 504.
    read_your_writes_timeout_seconds: float = 10.0
    max_body_bytes: int = 1_048_576
    rate_limit_per_token: float = 50.0
    rate_limit_per_ip: float = 20.0
    rate_limit_burst: int = 200
    # Readiness fails when a projection is further behind the stream than this.
    max_ready_lag: int = 10_000
    projection_batch_size: int = 256
    bootstrap_token: str = ""
    bootstrap_token_file: str = ""
    db_pool_min: int = 1
    db_pool_max: int = 10

    def with_(self, **changes: Any) -> Settings:
        return msgspec.structs.replace(self, **changes)


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
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # "Expected `int`, got `str` - at `$.http_port`" -> name the variable, not the path.
        message = str(exc)
        for field in msgspec.structs.fields(Settings):
            if f"`$.{field.name}`" in message:
                raise SettingsError(f"{env_name(field.name)}: {message}") from None
        raise SettingsError(message) from None


def documented_settings() -> list[tuple[str, str, Any]]:
    """(variable, type, default) for the README table."""
    out = []
    for field in msgspec.structs.fields(Settings):
        out.append(
            (env_name(field.name), getattr(field.type, "__name__", str(field.type)), field.default)
        )
    return out

"""structlog JSON logging with request / correlation / event ids bound from context vars."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import structlog

from contracts.envelope import Event


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure_logging(*, service: str, level: str = "info", fmt: str = "json") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        # sys.stderr looked up per logger, not bound once: a logger configured while stderr
        # was temporarily replaced (a test's capture) must not write to it once closed.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


@contextlib.contextmanager
def event_log_context(event: Event) -> Iterator[None]:
    """Bind an event's ids to every log line written while it is handled."""
    envelope = event.envelope
    with structlog.contextvars.bound_contextvars(
        event_id=envelope.id,
        event_type=envelope.type,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
    ):
        yield

"""An event as a Slack incoming-webhook message: ``text`` (the notification line) and
``blocks`` (mrkdwn sections), rendered by the jinja2 templates in ``../templates``.

A ``release.decided`` shows its verdict and blockers, a ``finding.created`` the package,
advisory and severity, and any other event a generic summary; each links to the API under
the base URL given. Every value is escaped for mrkdwn (``&``, ``<``, ``>`` become entities,
control characters spaces), so an event cannot forge a link or a mention; links are built
only by the ``link`` filter. Slack's bounds are kept: at most 50 blocks and 3,000 characters
per text, cut at a line end and never inside an entity or a link.

Templates separate sections with a line holding only ``<!--section-->``; no value can
produce that line, since every ``<`` in a value is escaped.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import jinja2
import msgspec
from markupsafe import Markup

from contracts.envelope import RawEnvelope
from contracts.events.releases import ReleaseDecided
from contracts.events.scans import FindingCreated

MAX_BLOCKS: Final = 50
MAX_TEXT_CHARS: Final = 3000
# Blockers listed one per line; the rest are counted ("… and 480 more").
MAX_BLOCKERS_SHOWN: Final = 20
SECTION_BREAK: Final = "<!--section-->"
TEMPLATES_DIR: Final = Path(__file__).resolve().parent.parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ELLIPSIS = "…"


def escape_mrkdwn(value: object) -> str:
    """Slack's three control characters as entities; control characters (newlines
    included: a value stays on its line) as spaces."""
    text = _CONTROL.sub(" ", str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finalize(value: object) -> object:
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return ""
    return escape_mrkdwn(value)


def link(url: str, label: object) -> Markup:
    """``<url|label>``: the URL with the characters that would end the link percent-encoded,
    the label escaped."""
    safe_url = urllib.parse.quote(_CONTROL.sub("", url), safe=":/?#[]@!$&'()*+,;=%~-._")
    safe_url = safe_url.replace("&", "&amp;")
    return Markup(f"<{safe_url}|{escape_mrkdwn(label)}>")


def clip(value: object, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=False,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["link"] = link
    environment.filters["clip"] = clip
    return environment


def api_url(base: str, path: str, query: dict[str, str] | None = None) -> str:
    url = base.rstrip("/") + path
    return url + "?" + urllib.parse.urlencode(query) if query else url


def _view(envelope: RawEnvelope, api_base_url: str) -> tuple[str, dict[str, Any]]:
    common: dict[str, Any] = {
        "envelope": envelope,
        "catalog_url": api_url(api_base_url, "/api/v1/events/catalog"),
    }
    if envelope.type == ReleaseDecided.event_type and envelope.schema_version == 1:
        try:
            decided = msgspec.json.decode(envelope.data, type=ReleaseDecided)
        except msgspec.ValidationError:
            pass  # a payload off its schema is still told, generically
        else:
            shown = decided.blockers[:MAX_BLOCKERS_SHOWN]
            total = max(decided.blocker_total, len(decided.blockers))
            return "slack/release.decided.j2", common | {
                "decided": decided,
                "blockers": shown,
                "more_blockers": total - len(shown),
                "url": api_url(
                    api_base_url,
                    "/api/v1/releases/decision",
                    {"repo": decided.repo, "commit": decided.commit},
                ),
            }
    if envelope.type == FindingCreated.event_type and envelope.schema_version == 1:
        try:
            finding = msgspec.json.decode(envelope.data, type=FindingCreated)
        except msgspec.ValidationError:
            pass  # a payload this version cannot read is still shown, by the generic template
        else:
            path = "/api/v1/findings/" + urllib.parse.quote(finding.finding_id, safe="")
            return "slack/finding.created.j2", common | {
                "finding": finding,
                "url": api_url(api_base_url, path),
            }
    return "slack/generic.j2", common


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending with an ellipsis when cut: at the
    last line end that fits, else at a character, never inside an entity or a link."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    line_end = head.rfind("\n")
    if line_end > limit // 2:
        head = head[:line_end]
    else:
        for opener, closer in (("<", ">"), ("&", ";")):
            start = head.rfind(opener)
            if start != -1 and head.find(closer, start) == -1:
                head = head[:start]
    return head.rstrip() + _ELLIPSIS


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_TEXT_CHARS)}}


def _blocks(sections: Iterable[str]) -> list[dict[str, Any]]:
    parts = list(sections)
    if len(parts) > MAX_BLOCKS:
        omitted = len(parts) - (MAX_BLOCKS - 1)
        parts = [*parts[: MAX_BLOCKS - 1], f"{_ELLIPSIS} {omitted} more sections not shown"]
    return [_section(part) for part in parts]


def slack_message(envelope: RawEnvelope, *, api_base_url: str) -> dict[str, Any]:
    """The incoming-webhook JSON for one event. The first section is also ``text`` (what
    a notification shows)."""
    template, context = _view(envelope, api_base_url)
    rendered = _environment().get_template(template).render(**context)
    sections = [part.strip() for part in rendered.split(SECTION_BREAK)]
    sections = [part for part in sections if part]
    if not sections:
        sections = [escape_mrkdwn(envelope.type)]
    return {"text": _cut(sections[0], MAX_TEXT_CHARS), "blocks": _blocks(sections)}

"""Questions to the stream itself."""

from __future__ import annotations

from collections.abc import Sequence

import nats.js.errors

from shared.bus import Bus


async def last_sequence_of(bus: Bus, subjects: Sequence[str]) -> int:
    """The stream sequence of the newest event on any of ``subjects`` (0 if none).

    A filtered projection's checkpoint only reaches its own subjects' events, so "caught up"
    means: applied this sequence (not the stream's last one).
    """
    newest = 0
    for subject in subjects:
        try:
            msg = await bus.js.get_last_msg(bus.stream, subject)
        except nats.js.errors.NotFoundError:
            continue
        newest = max(newest, int(msg.seq or 0))
    return newest

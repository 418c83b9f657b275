"""CPU-bound work of imports, off the event loop and without the cyclic garbage collector.

Reading a bundle of 100k advisories allocates a few hundred thousand small acyclic objects
(msgspec Structs with ``gc=False``, tuples, bytes); the collector's repeated passes over
them cost about a quarter of the work. The pause is counted, so overlapping pauses from
several threads end when the last one does.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import threading
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


class _GcPause:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = True

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


gc_paused = _GcPause()


def _paused(fn: Callable[..., R], *args: Any) -> R:
    with gc_paused:
        return fn(*args)


async def offload(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` in a worker thread with the cyclic collector paused."""
    return await asyncio.to_thread(_paused, fn, *args)


def return_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``; elsewhere a
    no-op). After loading or importing 100k advisories the transient documents leave tens of
    megabytes free but mapped; this is what keeps the scanner's RSS near what it holds."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass

"""Run a function in a warm child process bounded in memory and wall-clock time, so that an
input that is expensive to handle (a document within every size limit that still takes
gigabytes or minutes to read) costs the caller an error, never its own process.

One child per runner, kept between calls; calls go one at a time. The child is a fresh
interpreter (``python -m shared.bounded``, not a fork of an asyncio process with threads,
and not ``multiprocessing``'s spawn, which would import the parent's ``__main__`` and with it
every service), in a session of its own (a ^C to the terminal is the parent's to handle),
talking over a socket pair. It limits its address space with ``RLIMIT_AS`` before it
imports anything but this module: an allocation beyond it is a ``MemoryError``. The parent
bounds each call's time: when a call is late, or the awaiting task is cancelled, it kills
the child, and the next call starts a new one. A child that ran out of memory is replaced
too (its heap is not to be trusted).

Errors: :class:`OutOfMemory`, :class:`OutOfTime` and :class:`ChildDied` (killed by the
kernel, a signal, or a crash in a C extension) are all :class:`BoundExceeded`, each with a
message naming the limit; an exception raised by the function itself is raised again as it
is (when it pickles; otherwise a ``RuntimeError`` naming it). Arguments and the result
travel by pickle: keep them to bytes and plain values, and encode large results yourself
(``msgspec`` is many times faster than pickle for Structs).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")

# How long a new child may take to start and import its modules.
START_SECONDS = 60.0
_MIB = 1_048_576


class BoundExceeded(Exception):
    """The call went beyond a bound of its child process; ``limit`` says which."""

    limit = "bound"


class OutOfMemory(BoundExceeded):
    limit = "memory"


class OutOfTime(BoundExceeded):
    limit = "time"


class ChildDied(BoundExceeded):
    """The child ended without an answer (most often the kernel's out-of-memory killer)."""

    limit = "memory"


class ChildFailedToStart(RuntimeError):
    """The child could not start (e.g. a memory bound below what its imports need): a
    configuration error, not the input's fault."""


def describe_bytes(count: int) -> str:
    return f"{count / _MIB:,.0f} MiB" if count >= _MIB else f"{count:,} bytes"


@dataclass(frozen=True, kw_only=True)
class Bounds:
    # Address space of the child (RLIMIT_AS), in bytes: virtual memory, so it includes the
    # interpreter and its imports, not only what the call allocates.
    memory_bytes: int
    # Wall-clock time of one call, from the moment its arguments are handed over.
    seconds: float


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    conn: Connection


class BoundedRunner:
    """``await runner.run(fn, *args)``: ``fn(*args)`` in the bounded child. ``fn`` must be a
    module-level function (it is pickled by name); ``preload`` names modules the child
    imports before it says it is ready, so that a call's time is the call's own."""

    def __init__(self, bounds: Bounds, *, preload: Sequence[str] = ()) -> None:
        self.bounds = bounds
        self.preload = tuple(preload)
        self._child: _Child | None = None
        self._lock = asyncio.Lock()
        self.started = 0  # children started so far (tests, diagnostics)

    @property
    def pid(self) -> int | None:
        return self._child.process.pid if self._child is not None else None

    async def start(self) -> None:
        """Start the child now (otherwise the first call does)."""
        async with self._lock:
            await self._ready()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            child = await self._ready()
            try:
                status, value = await asyncio.to_thread(
                    _exchange, child, fn, args, self.bounds.seconds
                )
            except BaseException:
                # Late, dead, or our caller was cancelled: this child is not to be reused
                # (a cancelled call would otherwise answer the next one). Killed only: the
                # thread of a cancelled call may still wait on the connection, and closes it
                # when the child's end does.
                self._child = None
                _kill(child, close=False)
                raise
            if status == "ok":
                return value  # type: ignore[no-any-return]
            if status == "memory":
                self._discard()
                raise OutOfMemory(
                    f"needed more memory than its {describe_bytes(self.bounds.memory_bytes)} "
                    "of address space"
                )
            raise value

    async def close(self) -> None:
        async with self._lock:
            self._discard()

    async def _ready(self) -> _Child:
        if self._child is None or self._child.process.poll() is not None:
            self._discard()
            self._child = await asyncio.to_thread(self._spawn)
            self.started += 1
        return self._child

    def _spawn(self) -> _Child:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shared.bounded",
                    str(theirs.fileno()),
                    str(self.bounds.memory_bytes),
                    *self.preload,
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # The child imports what this process can (a test module, an editable install).
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
            child = _Child(process=process, conn=Connection(os.dup(ours.fileno())))
        try:
            if not child.conn.poll(START_SECONDS):
                raise ChildFailedToStart(f"the child did not start within {START_SECONDS:.0f} s")
            status, detail = child.conn.recv()
        except (EOFError, OSError) as exc:
            _kill(child)
            raise ChildFailedToStart(
                f"the child ended while starting ({_ending(process)}); is "
                f"{describe_bytes(self.bounds.memory_bytes)} of address space enough to start?"
            ) from exc
        except BaseException:
            _kill(child)
            raise
        if status != "ready":
            _kill(child)
            raise ChildFailedToStart(
                f"the child could not start within "
                f"{describe_bytes(self.bounds.memory_bytes)} of address space: {detail}"
            )
        return child

    def _discard(self) -> None:
        if self._child is not None:
            _kill(self._child)
            self._child = None


def _exchange(
    child: _Child, fn: Callable[..., Any], args: tuple[Any, ...], seconds: float
) -> tuple[str, Any]:
    """One call, on a thread of the parent: hand it over, wait at most ``seconds``."""
    try:
        child.conn.send((fn, args))
        if not child.conn.poll(seconds):
            raise OutOfTime(f"took longer than its {seconds:g} s")
        answer: tuple[str, Any] = child.conn.recv()
    except (EOFError, OSError) as exc:
        ending = _ending(child.process)  # before the kill, which would be its cause
        _kill(child)
        raise ChildDied(f"ended without an answer ({ending})") from exc
    except Exception:  # late, or e.g. arguments that do not pickle: a new child next time
        _kill(child)
        raise
    return answer


def _ending(process: subprocess.Popen[bytes]) -> str:
    try:
        code = process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return "its connection closed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by {name}, most likely for memory"
    return f"exit code {code}"


def _kill(child: _Child, *, close: bool = True) -> None:
    with contextlib.suppress(OSError):
        child.process.kill()
    if close:
        with contextlib.suppress(OSError):
            child.conn.close()
    # Reap it off the caller's path: a killed process ends at once, but waiting blocks.
    threading.Thread(target=_reap, args=(child.process,), daemon=True).start()


def _reap(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


# ---- in the child ------------------------------------------------------------------------


def _serve(conn: Connection, memory_bytes: int, preload: Sequence[str]) -> None:
    """The child's loop: one call at a time until the parent goes away."""
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory_bytes = min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
        for module in preload:
            importlib.import_module(module)
    except MemoryError:
        _answer(conn, ("failed", "MemoryError while importing"))
        return
    except Exception as exc:
        _answer(conn, ("failed", f"{type(exc).__name__}: {exc}"))
        return
    _answer(conn, ("ready", None))
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        except MemoryError:
            _answer(conn, ("memory", None))
            return
        answer = _call(message)
        del message
        if not _answer(conn, answer) or answer[0] == "memory":
            return


def _call(message: bytes) -> tuple[str, Any]:
    # A function of its own, so that the call's arguments are freed before the answer is sent.
    try:
        fn, args = pickle.loads(message)
        return ("ok", fn(*args))
    except MemoryError:
        return ("memory", None)
    except Exception as exc:  # the function's own, or a call the child cannot unpickle
        return ("error", exc)


def _answer(conn: Connection, answer: tuple[str, Any]) -> bool:
    try:
        conn.send(answer)
    except MemoryError:
        return answer[0] != "memory" and _answer(conn, ("memory", None))
    except OSError:
        return False
    except Exception as exc:  # the result or the exception does not pickle
        return answer[0] == "ok" and _answer(
            conn, ("error", RuntimeError(f"the answer cannot be sent: {type(exc).__name__}"))
        )
    return True


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]), sys.argv[3:])

"""Test-only fault points: die like a kill -9 at one named step.

``GATEHOUSE_FAULT_POINT=<name>`` makes the process SIGKILL itself the first time it reaches
``point(<name>)``, so a test can crash a service exactly between two steps (after publishing
an event, before storing an answer) and check what a retry gets. Unset (always, outside
tests), ``point`` is one dictionary lookup.

Points:

* ``command.after_publish``: an event of an Idempotency-Key command is on the stream, its
  projection has not been waited for (``shared.commands``);
* ``rpc.after_send``: a request went to the owner service, no answer was read yet;
* ``idempotency.before_store``: the gateway has the answer to an Idempotency-Key request and
  has not stored it.
"""

from __future__ import annotations

import os
import signal

ENV = "GATEHOUSE_FAULT_POINT"


def armed(name: str) -> bool:
    return os.environ.get(ENV) == name


def point(name: str) -> None:
    if armed(name):
        os.kill(os.getpid(), signal.SIGKILL)

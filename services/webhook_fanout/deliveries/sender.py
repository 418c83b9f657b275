"""The sender: sends queued deliveries, in stream order per subscription, many subscriptions
at once.

* **Claims.** One query leases subscriptions this sender is not already sending to whose
  oldest open delivery is due and which no other sender holds, and returns each one's
  *run*: that delivery and the due ones right behind it (``store.claim``; the lease is one
  row per subscription, the deliveries are not written). So only the head of a
  subscription's queue is ever in flight, across replicas too.
* **Runs.** A task per subscription sends its run one delivery after the other and stops at
  the first that is not delivered; the rest stay queued as they were. A receiver that hangs or fails
  holds up its own subscription only; connections per receiver host are bounded by the
  client.
* **Writes.** Finished runs are written together, one statement for all (attempts,
  delivery states, the end of their leases, subscription health), then the next claim: two
  round trips per cycle whatever the number of subscriptions.
* **Leases** are renewed while sending. A sender that dies stops renewing; once its leases
  expire another sender (or this one restarted) takes the deliveries over and sends them
  again with the same delivery id: at least once.
* **Wake-ups:** ``NOTIFY`` from the intake and redeliveries, the end of a run, and a timer
  for the next due retry or lease expiry. No polling loop.
* **Outcomes** (``domain.retry``): 2xx delivered; ``410`` dead-letters the delivery,
  disables the subscription at once (``webhook.disabled``, reason ``gone``) and cancels its
  queue; otherwise a retry at the scheduled time, and after the last attempt the dead-letter
  list and ``webhook.delivery-failed``; a subscription failing five days straight is
  disabled (reason ``failing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Final

import asyncpg
import msgspec

from contracts.envelope import Event, EventPayload, OpaquePayload, RawEnvelope
from contracts.events.webhooks import WebhookDeliveryFailed, WebhookDisabled
from services.webhook_fanout.deliveries import store
from services.webhook_fanout.deliveries.client import DeliveryClient, SendResult
from services.webhook_fanout.deliveries.outcomes import (
    DELIVERY_NAMESPACE,
    health_changes,
    next_step,
    state_after,
)
from services.webhook_fanout.domain.dispatch import DispatchOptions
from services.webhook_fanout.domain.formats import Delivery, build_request
from services.webhook_fanout.domain.retry import (
    AttemptOutcome,
    DeadLetter,
    Gone,
    Next,
    Retry,
    failing_too_long,
)
from services.webhook_fanout.domain.signing import SecretScheme, SigningKeys, parse_secret
from services.webhook_fanout.subscriptions import store as subscriptions_store
from shared.bus import Bus
from shared.db import connect
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)

# Deliveries leased per subscription per claim: long enough to keep a busy subscription
# streaming between claims, short enough that a failure gives few back.
RUN_LENGTH: Final = 64
# While idle with nothing scheduled, look once in a while anyway (a lost NOTIFY).
IDLE_LOOK_SECONDS: Final = 30.0
ERROR_PAUSE_SECONDS: Final = 1.0
PAST_DUE_LOOK_SECONDS: Final = 1.0
_raw_envelope = msgspec.json.Decoder(RawEnvelope)


@dataclass(slots=True)
class _Attempt:
    claimed: store.Claimed
    event_type: str
    at: dt.datetime
    headers: dict[str, str]
    result: SendResult
    step: Next


@dataclass(slots=True)
class _Run:
    subscription_id: str
    claimed: list[store.Claimed]
    attempts: list[_Attempt] = field(default_factory=list)


class Sender:
    def __init__(
        self, *, pool: asyncpg.Pool, bus: Bus, settings: Settings, owner: str, version: str
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.settings = settings
        self.owner = owner
        self.version = version
        self.client = DeliveryClient(settings)
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, _Run] = {}
        self._done: list[_Run] = []
        self._tasks: list[asyncio.Task[None]] = []
        # The claim loop's own connection: it LISTENs, and flushes, claims and looks for
        # the next due time on it (one after the other), without a pool's reset round trip.
        self._listener: asyncpg.Connection | None = None
        self._secrets: dict[tuple[str, int], list[str]] = {}
        self._random = random.Random()

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.client.open()
        self._tasks = [
            asyncio.create_task(self._main(), name="webhook-sender"),
            asyncio.create_task(self._renew_leases(), name="webhook-leases"),
        ]

    async def stop(self) -> None:
        """Stop sending: runs in flight are cut short; what they finished is recorded and their
        leases end (a delivery cut mid-request is sent again, same id)."""
        for task in [*self._tasks, *self._busy.values()]:
            task.cancel()
        for task in [*self._tasks, *self._busy.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._done = list(self._runs.values())
        with contextlib.suppress(Exception):
            if self._listener is not None and not self._listener.is_closed():
                await self._flush(self._listener)
            else:
                async with self.pool.acquire() as conn:
                    await self._flush(conn)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        await self.client.close()

    async def _listen(self) -> asyncpg.Connection:
        if self._listener is None or self._listener.is_closed():
            self._listener = await connect(self.settings.database_url)
            # Claims and recorded attempts need not wait for the WAL flush: one lost in a
            # database crash only means a delivery sent again with the same id (at least
            # once). A transaction that disables a subscription turns it back on.
            await self._listener.execute("SET synchronous_commit = off")
            await self._listener.add_listener(store.CHANNEL, lambda *_: self._wake.set())
        return self._listener

    # ---- the loop --------------------------------------------------------------------------
    async def _main(self) -> None:
        while True:
            try:
                await self._cycle(await self._listen())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook_sender_retry", error=f"{type(exc).__name__}: {exc}")
                if self._listener is not None:
                    self._listener.terminate()
                self._listener = None
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def _cycle(self, conn: asyncpg.Connection) -> None:
        while True:
            self._wake.clear()
            await self._flush(conn)
            claimed = await self._claim(conn)
            if claimed or self._done:
                continue
            timeout = IDLE_LOOK_SECONDS
            due = await store.next_due(conn, owner=self.owner)
            if due is not None:
                wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
                # Due already but not claimable (its subscription is busy here, or being
                # disabled): its run's end or a change wakes the loop; never spin on it.
                timeout = min(timeout, wait + 0.005 if wait > 0 else PAST_DUE_LOOK_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _claim(self, conn: asyncpg.Connection) -> list[store.Claimed]:
        room = self.settings.webhook_max_in_flight - len(self._busy)
        if room <= 0:
            return []
        claimed = await store.claim(
            conn,
            owner=self.owner,
            lease_seconds=self.settings.webhook_lease_seconds,
            busy=list(self._busy),
            subscriptions=room,
            run_length=RUN_LENGTH,
        )
        runs: dict[str, list[store.Claimed]] = {}
        for item in claimed:
            runs.setdefault(item.subscription_id, []).append(item)
        for subscription_id, items in runs.items():
            run = _Run(subscription_id=subscription_id, claimed=items)
            self._runs[subscription_id] = run
            self._busy[subscription_id] = asyncio.create_task(
                self._send_run(run), name=f"webhook-run:{subscription_id}"
            )
        return claimed

    async def _renew_leases(self) -> None:
        interval = self.settings.webhook_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            subscriptions = list(self._runs)
            if not subscriptions:
                continue
            try:
                async with self.pool.acquire() as conn:
                    await store.renew(
                        conn,
                        owner=self.owner,
                        lease_seconds=self.settings.webhook_lease_seconds,
                        subscriptions=subscriptions,
                    )
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("webhook_lease_renewal_failed", error=str(exc))

    # ---- one subscription's run ------------------------------------------------------------
    async def _send_run(self, run: _Run) -> None:
        try:
            keys = await self.signing_keys(run.claimed[0])
            for claimed in run.claimed:
                attempt = await self.attempt(claimed, keys)
                run.attempts.append(attempt)
                if state_after(attempt.step) != "succeeded":
                    break
        except Exception as exc:  # a bug must not leave the subscription leased forever
            log.error("webhook_run_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._done.append(run)
            self._wake.set()

    async def signing_keys(self, claimed: store.Claimed) -> SigningKeys | None:
        """The keys ``claimed`` is signed with (None: slack, or no secret). The secrets of a
        subscription's version are read once (they never change within a version); which of
        them still signs is decided at each call."""
        if claimed.format == "slack":
            return None
        cache_key = (claimed.subscription_id, claimed.secret_version)
        texts = self._secrets.get(cache_key)
        if texts is None:
            now = dt.datetime.now(dt.UTC)
            texts = await subscriptions_store.signing_secrets(
                self.pool, claimed.subscription_id, now
            )
            if texts:
                self._secrets[cache_key] = texts
        if not texts:
            return None
        # Only Standard Webhooks formats hold whsec_ keys; orbitalreg's secret and a GitHub
        # dispatch's token are used as the text they are.
        scheme: SecretScheme = (
            "standard" if claimed.format in ("standard", "cloudevents") else "orbitalreg"
        )
        previous = texts[1] if len(texts) > 1 else None
        return SigningKeys.at(
            dt.datetime.now(dt.UTC),
            current=parse_secret(texts[0], scheme=scheme),
            previous=parse_secret(previous, scheme=scheme) if previous else None,
            previous_valid_until=claimed.previous_valid_until,
        )

    async def attempt(self, claimed: store.Claimed, keys: SigningKeys | None) -> _Attempt:
        """Send one delivery once and decide what follows."""
        envelope = _raw_envelope.decode(claimed.envelope)
        event = Event(
            envelope=envelope,
            payload=OpaquePayload(),
            sequence=claimed.stream_seq,
            raw=claimed.envelope,
        )
        at = dt.datetime.now(dt.UTC)
        headers: dict[str, str] = {}
        try:
            request = build_request(
                event,
                format=claimed.format,
                delivery=Delivery(
                    delivery_id=claimed.id,
                    attempted_at=at,
                    version=self.version,
                    api_base_url=self.settings.public_url,
                    keys=keys,
                    dispatch=_dispatch_options(claimed),
                ),
            )
        except ValueError as exc:  # no usable secret: nothing can be sent until there is one
            result = SendResult(
                outcome=AttemptOutcome(),
                body=None,
                truncated=False,
                latency_ms=0.0,
                error=f"not signed: {exc}"[:1000],
            )
        else:
            result = await self.client.post(claimed.url, headers=request.headers, body=request.body)
            headers = _recordable(request.headers)
        step = next_step(
            result.outcome,
            attempt=claimed.attempts + 1,
            finished_at=dt.datetime.now(dt.UTC),
            random_unit=self._random.random(),
            scale=self.settings.webhook_retry_schedule_scale,
        )
        return _Attempt(
            claimed=claimed,
            event_type=envelope.type,
            at=at,
            headers=headers,
            result=result,
            step=step,
        )

    # ---- recording -------------------------------------------------------------------------
    async def _flush(self, conn: asyncpg.Connection) -> None:
        if not self._done:
            return
        runs, self._done = self._done, []
        finished = [
            store.Finished(
                id=a.claimed.id,
                attempt=a.claimed.attempts + 1,
                attempt_total=a.claimed.attempts_total + 1,
                at=a.at,
                headers=a.headers,
                status=a.result.outcome.status,
                body=a.result.body,
                truncated=a.result.truncated,
                latency_ms=a.result.latency_ms,
                error=a.result.error,
                state=state_after(a.step),
                next_attempt_at=a.step.at if isinstance(a.step, Retry) else None,
                subscription_id=run.subscription_id,
            )
            for run in runs
            for a in run.attempts
        ]
        health = health_changes(
            (a.claimed.subscription_id, a.at, state_after(a.step) == "succeeded")
            for run in runs
            for a in run.attempts
        )
        events: list[tuple[EventPayload, str, str]] = []
        # Runs that ended on a success have no consequence: their one statement needs no
        # transaction around it (two round trips fewer between two claims).
        calm = all(
            not run.attempts or state_after(run.attempts[-1].step) == "succeeded" for run in runs
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if not calm:
                    await stack.enter_async_context(conn.transaction())
                    await conn.execute("SET LOCAL synchronous_commit = on")
                failing = await store.finish(
                    conn,
                    owner=self.owner,
                    finished=finished,
                    released=[run.subscription_id for run in runs if not run.attempts],
                    health=health,
                )
                now = dt.datetime.now(dt.UTC)
                for run in runs:
                    events += await self._consequences(conn, run, failing, now)
        except BaseException:
            self._done = runs + self._done  # recorded on the next cycle
            raise
        for run in runs:
            self._runs.pop(run.subscription_id, None)
            self._busy.pop(run.subscription_id, None)
        for payload, aggregate, event_id in events:
            try:
                await self.bus.publish(
                    payload, aggregate=aggregate, actor="system", event_id=event_id
                )
            except Exception as exc:
                log.error(
                    "webhook_event_not_published",
                    event_type=type(payload).event_type,
                    error=f"{type(exc).__name__}: {exc}",
                )

    async def _consequences(
        self,
        conn: asyncpg.Connection,
        run: _Run,
        failing: dict[str, dt.datetime | None],
        now: dt.datetime,
    ) -> list[tuple[EventPayload, str, str]]:
        """Events to publish (after the commit) for a finished run, and the subscription
        disabled here when the run says so."""
        if not run.attempts:
            return []
        sid = run.subscription_id
        aggregate = f"webhook:{sid}"
        out: list[tuple[EventPayload, str, str]] = []
        last = run.attempts[-1]
        claimed = last.claimed
        series = f"{claimed.id}/{claimed.attempts_total + 1}"
        if isinstance(last.step, DeadLetter):
            out.append(
                (
                    WebhookDeliveryFailed(
                        id=sid,
                        delivery_id=str(claimed.id),
                        event_id=claimed.event_id,
                        event_type_delivered=last.event_type,
                        attempts=last.step.attempts,
                        last_status=last.result.outcome.status,
                        last_error=(last.result.error or "")[:1000],
                    ),
                    aggregate,
                    str(uuid.uuid5(DELIVERY_NAMESPACE, f"failed/{series}")),
                )
            )
        reason = None
        if isinstance(last.step, Gone):
            reason, detail = "gone", "the receiver answered 410 Gone"
        elif state_after(last.step) != "succeeded" and failing_too_long(failing.get(sid), now=now):
            reason, detail = "failing", "every delivery failed for 5 days"
        if reason is not None:
            await store.disable_locally(conn, sid, revision=claimed.revision)
            out.append(
                (
                    WebhookDisabled(id=sid, reason=reason, detail=detail),  # type: ignore[arg-type]
                    aggregate,
                    str(uuid.uuid5(DELIVERY_NAMESPACE, f"disabled/{sid}/{claimed.revision}")),
                )
            )
            log.warning("webhook_disabled", subscription_id=sid, reason=reason)
        return out


def _dispatch_options(claimed: store.Claimed) -> DispatchOptions | None:
    if claimed.workflow_options is None:
        return None
    return msgspec.convert(claimed.workflow_options, DispatchOptions)


def _recordable(headers: dict[str, str]) -> dict[str, str]:
    """The request headers as the delivery log shows them: a credential never (a GitHub
    dispatch's token), signatures yes (they are HMACs, not the secret)."""
    return {k: "[redacted]" if k.lower() == "authorization" else v for k, v in headers.items()}

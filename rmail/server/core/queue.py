"""The outbound queue: persistent entries, a scheduler, retries with backoff, expiry, DSNs.

One entry per remote recipient (storage.QueueStore); the message bytes are shared with the
delivery's local copies, or written for the queue alone (``enqueue``), and collected when the
last entry and message using them go. Schedulers on several nodes share one store: each due
entry is leased to one of them for ``LEASE_SECONDS`` (renewed by rescheduling or deleting it),
so no entry is attempted twice at once, and one held by a node that died is tried again after
its lease ends.

Invariants:

- ``enqueue`` returns only once the blob and every row are durable, so SMTP may say 250.
- An entry leaves the table only after it was delivered, bounced (a DSN is in the sender's
  INBOX first, when the sender is local) or deleted by an administrator. A crash in between
  means one more attempt (at-least-once), never a silent loss.
- A 4xx reply or a network error retries after ``schedule[attempts - 1]`` seconds (the last
  step repeats); a 5xx bounces at once; past ``lifetime`` the entry bounces as expired. Once,
  after ``delay_notice``, the sender gets a "delayed" notice (RFC 3464 Action: delayed).
- Mail from the null sender never produces a DSN (RFC 5321 §6.1, RFC 3464 §2: no bounce loops).
- Every change publishes ``QueueChanged`` after commit; a permanent failure also ``Bounced``.

The SMTP conversation itself is a ``Transport`` (rmail.server.smtp.outbound), so the core
stays free of protocol code and tests can drive the queue against a sink server.
"""

from __future__ import annotations

import asyncio
import builtins         # builtins.list: the class below has a list() method
import contextlib
import enum
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Callable, Protocol, Sequence

from .aliases import Aliases
from .errors import InvalidInput, NotFound, RmailError, StorageFull, TemporaryFailure
from .events import Bounced, EventBus, ExternalChange, OutboundAttempted
from .model import Address, QueueEntry
from .storage.mail import MailStore, Outbound
from .storage.queuestore import QueueStore
from .tracefields import return_path, without_return_path

log = logging.getLogger("rmail.queue")

#: Retry delays in seconds after the 1st, 2nd, ... failed attempt; the last one repeats.
BACKOFF: tuple[float, ...] = (60, 300, 900, 1800, 3600)
#: Delivery attempts running at once.
CONCURRENCY = 8
#: Longest remote diagnostic kept (the DSN and ``queue list`` show it).
MAX_DIAGNOSTIC = 500
#: How long a scheduler holds an entry it is attempting: well past the longest SMTP attempt
#: (connect, TLS and the data phase time out far sooner), so only a dead node's lease expires.
LEASE_SECONDS = 1800


class Outcome(enum.Enum):
    DELIVERED = "delivered"     #: the remote server accepted the message (250 after DATA)
    TEMPORARY = "temporary"     #: 4xx, network or DNS trouble: try again later
    PERMANENT = "permanent"     #: 5xx or a domain that cannot receive mail: bounce


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one delivery attempt to one recipient came to."""

    outcome: Outcome
    status: str = ""            #: RFC 3463 enhanced status, e.g. "5.1.1"
    diagnostic: str = ""        #: the remote reply or our own explanation
    remote_mta: str = ""        #: host name of the server that answered, if any

    @classmethod
    def delivered(cls, remote_mta: str = "") -> AttemptResult:
        return cls(Outcome.DELIVERED, "2.0.0", "", remote_mta)

    @classmethod
    def temporary(cls, status: str, diagnostic: str, remote_mta: str = "") -> AttemptResult:
        return cls(Outcome.TEMPORARY, status, _clean(diagnostic), remote_mta)

    @classmethod
    def permanent(cls, status: str, diagnostic: str, remote_mta: str = "") -> AttemptResult:
        return cls(Outcome.PERMANENT, status, _clean(diagnostic), remote_mta)

    def describe(self) -> str:
        where = f" ({self.remote_mta})" if self.remote_mta else ""
        return f"{self.status} {self.diagnostic}{where}".strip()


class Transport(Protocol):
    """Sends one message to one recipient (rmail.server.smtp.outbound implements it)."""

    async def send(self, sender: str, recipient: str, data: bytes) -> AttemptResult:
        """Try once; never raises for remote trouble, reports it in the result."""

    async def close(self) -> None:
        """Release threads and sockets."""


def _clean(text: str) -> str:
    return " ".join("".join(c if c >= " " else " " for c in text).split())[:MAX_DIAGNOSTIC]


def retry_delay(attempts: int, schedule: Sequence[float] = BACKOFF) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    return float(schedule[min(max(attempts, 1), len(schedule)) - 1])


# -- DSN (RFC 3464) -----------------------------------------------------------------------------

def _header_block(data: bytes) -> bytes:
    """The original message's header section (for text/rfc822-headers, RFC 6522 §4)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = data.find(sep)
        if end != -1:
            return data[:end + len(sep) // 2]
    return data[:64 * 1024]


def _addr_type(address: str) -> str:
    # RFC 6533 §3: "utf-8" address type for internationalised addresses.
    return "rfc822" if address.isascii() else "utf-8"


def build_dsn(*, hostname: str, entry: QueueEntry, original: bytes, result: AttemptResult, action: str,
              now: datetime, retry_until: datetime | None = None) -> bytes:
    """A multipart/report delivery status notification (RFC 3464, RFC 6522) as message bytes.

    ``action`` is "failed" (the message is dropped) or "delayed" (still being retried).
    """
    boundary = f"=_rmail_{secrets.token_hex(12)}"
    failed = action == "failed"
    subject = "Undelivered Mail Returned to Sender" if failed else "Delayed Mail (still being retried)"
    reason = result.describe() or "no reason given"
    if failed:
        human = (f"Your message to <{entry.recipient}> could not be delivered and has been returned.\r\n\r\n"
                 f"Reason: {reason}\r\n")
    else:
        until = format_datetime(retry_until) if retry_until else "later"
        human = (f"Your message to <{entry.recipient}> has not been delivered yet.\r\n"
                 f"rmail keeps trying until {until}; you need not send it again.\r\n\r\n"
                 f"Last problem: {reason}\r\n")
    status = result.status or ("5.0.0" if failed else "4.0.0")
    fields = [f"Final-Recipient: {_addr_type(entry.recipient)}; {entry.recipient}", f"Action: {action}",
              f"Status: {status}"]
    if result.remote_mta:
        fields.append(f"Remote-MTA: dns; {result.remote_mta}")
    if result.diagnostic:
        fields.append(f"Diagnostic-Code: smtp; {result.diagnostic}")
    if entry.attempts or result.outcome is not Outcome.DELIVERED:
        fields.append(f"Last-Attempt-Date: {format_datetime(now)}")
    if retry_until is not None and not failed:
        fields.append(f"Will-Retry-Until: {format_datetime(retry_until)}")
    report = (f"Reporting-MTA: dns; {hostname}\r\nArrival-Date: {format_datetime(entry.created)}\r\n\r\n"
              + "\r\n".join(fields) + "\r\n")
    head = (f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
            f"To: <{entry.sender}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {format_datetime(now)}\r\n"
            f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
            "\r\n"
            "This is a MIME-encapsulated delivery status notification.\r\n\r\n")
    body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"{human}\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{report}\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n"
    return (head + body).encode("utf-8", "replace") + _header_block(original) + tail.encode()


async def enqueue(store: MailStore, sender: str, recipients: Sequence[str], data: bytes, now: float) -> list[int]:
    """Durably add one entry per recipient, all sharing one new copy of ``data``; returns their ids."""
    if not recipients:
        raise InvalidInput("no recipients to queue")
    return list((await store.deliver([], data, outbound=Outbound(sender, tuple(recipients), now))).queued)


# -- the scheduler ------------------------------------------------------------------------------------

class OutboundQueue:
    """Implements core.delivery.Outbound and runs delivery attempts in the background."""

    def __init__(self, store: MailStore, entries: QueueStore, aliases: Aliases, bus: EventBus, transport: Transport, *,
                 hostname: str, lifetime: float = 120 * 3600, delay_notice: float = 4 * 3600,
                 schedule: Sequence[float] = BACKOFF, clock: Callable[[], float] = time.time,
                 concurrency: int = CONCURRENCY) -> None:
        if not schedule:
            raise ValueError("the retry schedule needs at least one step")
        self.store = store
        self.entries = entries
        self.aliases = aliases
        self.bus = bus
        self.transport = transport
        self.hostname = hostname
        self.lifetime = lifetime
        self.delay_notice = delay_notice
        self.schedule = tuple(schedule)
        self.clock = clock
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._leased: dict[int, QueueEntry] = {}      #: the entries of ``_inflight``
        self._runner: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    # -- Outbound protocol and admin actions ------------------------------------------------------

    async def enqueue(self, sender: str, recipients: Sequence[str], data: bytes) -> list[int]:
        """Queue ``data`` in a transaction of its own (DSN-free admin and test path)."""
        ids = await enqueue(self.store, sender, recipients, data, self.clock())
        self.wake()
        return ids

    def entries_for(self, sender: str, recipients: Sequence[str]) -> Outbound:
        """The entries a delivery adds in its transaction (core.delivery.Outbound); ``wake``
        once it has committed."""
        return Outbound(sender, tuple(recipients), self.clock())

    async def list(self) -> list[QueueEntry]:
        return await self.entries.list()

    async def retry(self, entry_id: int) -> None:
        await self.entries.retry(entry_id, self.clock())
        self.wake()

    async def delete(self, entry_id: int) -> None:
        await self.entries.delete(entry_id)

    def wake(self) -> None:
        """Look at the table again now (new entry, admin action, a test moving the clock)."""
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        doorbell = self.bus.doorbell(lambda e: isinstance(e, ExternalChange))

        async def watch() -> None:
            # `run.py queue retry` from another process commits behind our back.
            try:
                while True:
                    await doorbell.wait()
                    self.wake()
            finally:
                self.bus.unsubscribe(doorbell)
        self._watcher = asyncio.create_task(watch(), name="rmail-queue-watch")
        self._runner = asyncio.create_task(self._run(), name="rmail-queue")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling; give running attempts ``grace`` seconds, then cancel them (they
        stay in the queue, their leases released, and are tried again at once by another
        node or after the next start)."""
        self._stopping = True
        for task in (self._runner, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        pending = list(self._inflight.values())
        if pending:
            done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
                for entry in [self._leased[i] for i, t in list(self._inflight.items()) if t in still]:
                    with contextlib.suppress(RmailError):
                        await self.entries.reschedule(entry.id, attempts=entry.attempts, next_attempt=self.clock(),
                                                      last_error=entry.last_error,
                                                      delayed_notified=entry.delayed_notified)
        await self.transport.close()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.concurrency - len(self._inflight)
            timeout: float | None = None
            try:
                if free > 0:
                    for entry in await self._due(self.clock(), free):
                        self._leased[entry.id] = entry
                        self._inflight[entry.id] = asyncio.create_task(self._attempt(entry),
                                                                       name=f"rmail-queue-{entry.id}")
                    if len(self._inflight) < self.concurrency:
                        nxt = await self._next_due()
                        if nxt is not None:
                            timeout = max(0.05, nxt - self.clock())
            except RmailError as exc:  # the store is closing or busy: look again shortly
                log.warning("queue: cannot read the queue: %s", exc)
                timeout = 1.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _due(self, now: float, limit: int) -> builtins.list[QueueEntry]:
        # Entries this scheduler attempts right now hold leases, so they are not handed out
        # again; one whose attempt outlived its lease is skipped here rather than doubled.
        return [e for e in await self.entries.lease_due(now, limit, LEASE_SECONDS) if e.id not in self._inflight]

    async def _next_due(self) -> float | None:
        return await self.entries.next_due(self.clock())

    # -- one attempt ---------------------------------------------------------------------------------

    async def _attempt(self, entry: QueueEntry) -> None:
        try:
            await self._attempt_once(entry)
        except asyncio.CancelledError:
            raise
        except TemporaryFailure as exc:
            # The store could not take the outcome now (a full disk: no room for the DSN):
            # the entry stays and is tried again; not a bug, so no traceback.
            log.warning("queue: entry %d: %s; trying again later", entry.id, exc)
            result = AttemptResult.temporary("4.3.1" if isinstance(exc, StorageFull) else "4.3.0", str(exc))
            self._outcome(entry, "deferred", "-", result)
            with contextlib.suppress(Exception):
                await self._reschedule(entry, result, self.clock(), notified=entry.delayed_notified)
        except Exception:  # noqa: BLE001 - one bad entry must not stop the queue
            log.exception("queue: attempt for entry %d failed unexpectedly", entry.id)
            with contextlib.suppress(Exception):
                await self._reschedule(entry, AttemptResult.temporary("4.3.0", "internal error"), self.clock(),
                                       notified=entry.delayed_notified)
        finally:
            if not self._stopping:
                self._inflight.pop(entry.id, None)
                self._leased.pop(entry.id, None)
            self.wake()

    async def _attempt_once(self, entry: QueueEntry) -> None:
        try:
            # The blob is shared with local copies, which carry the Return-Path of their final
            # delivery (RFC 5321 §4.4); a relayed message leaves without one.
            data = without_return_path(await self.store.read_message(entry.blob_id))
        except NotFound:
            log.error("queue: entry %d lost its message; removing it", entry.id)
            await self.entries.delete(entry.id, missing_ok=True)
            return
        try:
            result = await self.transport.send(entry.sender, entry.recipient, data)
        except Exception as exc:  # noqa: BLE001 - a transport bug is a temporary failure
            log.exception("queue: transport error for entry %d", entry.id)
            result = AttemptResult.temporary("4.3.0", f"internal error: {type(exc).__name__}")
        now = self.clock()
        age = now - entry.created.timestamp()
        if result.outcome is Outcome.DELIVERED:
            self._outcome(entry, "delivered", result.remote_mta or "?", result)
            await self.entries.delete(entry.id, missing_ok=True)
        elif result.outcome is Outcome.PERMANENT:
            self._outcome(entry, "bounced", result.remote_mta or "?", result)
            await self._bounce(entry, data, result, now)
        elif age >= self.lifetime:
            expired = AttemptResult.permanent(
                "4.4.7" if not result.status.startswith("5") else result.status,
                f"gave up after {entry.attempts + 1} attempts over {age / 3600:.0f} hours; last error: "
                f"{result.describe()}", result.remote_mta)
            self._outcome(entry, "bounced", result.remote_mta or "?", expired)
            await self._bounce(entry, data, expired, now)
        else:
            notify = not entry.delayed_notified and age >= self.delay_notice
            if notify:
                until = datetime.fromtimestamp(entry.created.timestamp() + self.lifetime, timezone.utc)
                await self._notify(entry, data, result, "delayed", now, until)
            self._outcome(entry, "deferred", result.remote_mta or "?", result)
            await self._reschedule(entry, result, now, notified=entry.delayed_notified or notify)

    def _outcome(self, entry: QueueEntry, outcome: str, relay: str, result: AttemptResult) -> None:
        """The one log line per attempt (what an operator greps for an id or a recipient), in
        one shape for every outcome, and the event metrics count."""
        reply = result.describe()
        log.info("queue: id=%d from=<%s> to=<%s> relay=%s outcome=%s reply=%s", entry.id, entry.sender,
                 entry.recipient, relay, outcome, reply,
                 extra={"queue_id": entry.id, "sender": entry.sender, "recipient": entry.recipient,
                        "relay": relay, "outcome": outcome, "reply": reply, "attempts": entry.attempts + 1})
        self.bus.publish(OutboundAttempted(entry.id, entry.recipient, outcome))

    async def _reschedule(self, entry: QueueEntry, result: AttemptResult, now: float, *, notified: bool) -> None:
        attempts = entry.attempts + 1
        await self.entries.reschedule(entry.id, attempts=attempts, next_attempt=now + retry_delay(attempts, self.schedule),
                                      last_error=result.describe(), delayed_notified=notified)

    async def _bounce(self, entry: QueueEntry, data: bytes, result: AttemptResult, now: float) -> None:
        await self._notify(entry, data, result, "failed", now)
        await self.entries.delete(entry.id, missing_ok=True)
        self.bus.publish(Bounced(entry.id, entry.sender, entry.recipient, result.status))

    async def _notify(self, entry: QueueEntry, data: bytes, result: AttemptResult, action: str, now: float,
                      retry_until: datetime | None = None) -> None:
        """Put a DSN into the sender's INBOX when the sender is a local user."""
        if not entry.sender:
            return  # RFC 3464 §2: never a DSN about a DSN (null sender)
        try:
            resolution = await self.aliases.resolve(Address.parse(entry.sender))
        except InvalidInput:
            return
        if resolution.account is None:
            log.info("queue: no DSN for entry %d: sender <%s> is not local", entry.id, entry.sender)
            return
        dsn = build_dsn(hostname=self.hostname, entry=entry, original=data, result=result, action=action,
                        now=datetime.fromtimestamp(now, timezone.utc), retry_until=retry_until)
        inbox = await self.store.get_mailbox(resolution.account.id, "INBOX")
        # A DSN comes from the null sender (RFC 3464 §2), which its Return-Path records.
        await self.store.deliver([(inbox.id, ())], return_path("") + dsn)

"""In-process event bus. An event says "look again"; the store holds the truth.

Publishing happens on the event loop thread, only after the commit that caused the event
(the store hands events over with ``loop.call_soon_threadsafe``). Each subscriber chooses a
loss policy so a slow one never slows the publisher:

- ``Doorbell``: one slot, repeated rings coalesce (IMAP sessions: "your mailbox changed").
- ``Feed``: a bounded queue that drops the oldest events and sets ``overflowed`` so the reader
  knows to resynchronise from a snapshot (console panes).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Callable, Iterable


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events."""


@dataclass(frozen=True, slots=True)
class MailboxChanged(Event):
    """Messages were added, re-flagged or expunged in a mailbox."""

    user_id: int
    mailbox_id: int


@dataclass(frozen=True, slots=True)
class MailboxesChanged(Event):
    """A user's mailbox list changed (create, delete, rename, subscribe)."""

    user_id: int


@dataclass(frozen=True, slots=True)
class AccountsChanged(Event):
    """Users or domains were added, removed or changed."""


@dataclass(frozen=True, slots=True)
class AliasesChanged(Event):
    """Alias rules of a domain changed."""

    domain: str


@dataclass(frozen=True, slots=True)
class QueueChanged(Event):
    """The outbound queue changed (entry added, attempted, delivered, bounced or deleted)."""


@dataclass(frozen=True, slots=True)
class ExternalChange(Event):
    """Another process (the CLI) committed to the store; anything may have changed."""


@dataclass(frozen=True, slots=True)
class ConnectionOpened(Event):
    conn_id: int
    protocol: str
    port: int
    peer: str
    tls: bool


@dataclass(frozen=True, slots=True)
class ConnectionUpdated(Event):
    conn_id: int
    state: str
    user: str | None
    tls: bool
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    conn_id: int


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A message was accepted (SMTP, REST send or APPEND) and stored or queued."""

    protocol: str
    sender: str
    local_recipients: int
    remote_recipients: int
    size: int


@dataclass(frozen=True, slots=True)
class AuthFailed(Event):
    protocol: str
    peer: str
    username: str


@dataclass(frozen=True, slots=True)
class LogRecord(Event):
    """A server log line, for the console's Log pane."""

    level: str
    logger: str
    message: str
    created: float


class Doorbell:
    """A one-slot subscription: ``wait()`` returns once after any number of rings."""

    __slots__ = ("_event", "predicate")

    def __init__(self, predicate: Callable[[Event], bool]) -> None:
        self._event = asyncio.Event()
        self.predicate = predicate

    def offer(self, event: Event) -> None:
        if self.predicate(event):
            self._event.set()

    @property
    def rung(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


class Feed:
    """A bounded FIFO of events; on overflow the oldest go and ``overflowed`` is set."""

    __slots__ = ("_items", "_ready", "overflowed", "predicate")

    def __init__(self, predicate: Callable[[Event], bool], maxlen: int = 10000) -> None:
        self._items: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self.overflowed = False
        self.predicate = predicate

    def offer(self, event: Event) -> None:
        if not self.predicate(event):
            return
        if len(self._items) == self._items.maxlen:
            self.overflowed = True
        self._items.append(event)
        self._ready.set()

    def drain(self) -> list[Event]:
        """All pending events (oldest first); clears ``overflowed``."""
        items = list(self._items)
        self._items.clear()
        self._ready.clear()
        self.overflowed = False
        return items

    async def wait(self) -> None:
        await self._ready.wait()


def _everything(_: Event) -> bool:
    return True


@dataclass
class EventBus:
    """Fan-out of events to subscribers on the loop thread. ``publish`` never blocks."""

    _subscribers: set[Doorbell | Feed] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def doorbell(self, predicate: Callable[[Event], bool] = _everything) -> Doorbell:
        sub = Doorbell(predicate)
        self._subscribers.add(sub)
        return sub

    def feed(self, predicate: Callable[[Event], bool] = _everything, maxlen: int = 10000) -> Feed:
        sub = Feed(predicate, maxlen)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Doorbell | Feed) -> None:
        self._subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        for sub in tuple(self._subscribers):
            sub.offer(event)

    def publish_many(self, events: Iterable[Event]) -> None:
        for event in events:
            self.publish(event)

    def publish_threadsafe(self, events: list[Event]) -> None:
        """Publish from another thread (the store's writer); no-op before a loop is bound."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.publish_many, events)
            except RuntimeError:  # loop closed between the check and the call
                pass


@dataclass(frozen=True, slots=True)
class Bounced(Event):
    """An outbound message failed for good (5xx or expired); the sender got a DSN if local."""

    entry_id: int
    sender: str
    recipient: str
    status: str


@dataclass(frozen=True, slots=True)
class OutboundAttempted(Event):
    """One delivery attempt of an outbound queue entry ended (metrics count these)."""

    entry_id: int
    recipient: str
    outcome: str    #: "delivered", "deferred" (tried again later) or "bounced"

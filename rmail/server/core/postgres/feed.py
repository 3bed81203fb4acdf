"""The change feed: other nodes' commits become events on this node's bus.

One dedicated connection (not from the pool: a pooled connection is reset and handed to others,
and LISTEN belongs to a session) LISTENs on ``notices.CHANNEL``. PostgreSQL delivers a NOTIFY
only once its transaction committed, so an event published here never runs ahead of the data
(a read started after it sees the commit). Our own notices come back too and are skipped: our
writes published their events when they committed (PgDatabase.write).

Notices sent while the connection is down are lost for good, so after every reconnect the feed
publishes ExternalChange ("anything may have changed") once LISTEN is in place again. A drop is
noticed at once when the socket closes; a connection that silently stopped answering (a network
partition) is found by a cheap ``SELECT 1`` every ``ping_interval`` seconds. That is a liveness
check, not polling: changes themselves always arrive as notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

import asyncpg

from ..errors import TemporaryFailure
from ..events import ExternalChange
from .database import PgDatabase
from .notices import CHANNEL, decode

__all__ = ["ChangeFeed"]

log = logging.getLogger("rmail.store")

Connect = Callable[[], Awaitable[asyncpg.Connection]]
#: What a lost or unreachable server raises while connecting or pinging.
_CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ChangeFeed:
    """LISTENs for other nodes' notices and hands their events to ``db.publish``.

    Args:
        db: this node's database (its ``node`` id tells our own notices apart).
        connect: opens a new connection to the same database.
        where: the database as shown in logs (never with a password).
        ping_interval: seconds between liveness checks of an idle connection.
        backoff: first and longest wait between reconnection attempts, in seconds.
    """

    def __init__(self, db: PgDatabase, connect: Connect, *, where: str, ping_interval: float = 15.0,
                 backoff: tuple[float, float] = (0.1, 10.0)) -> None:
        self._db = db
        self._connect = connect
        self._where = where
        self._ping_interval = ping_interval
        self._backoff = backoff
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0           #: how often the connection was re-established (tests, metrics)

    async def start(self) -> None:
        """Connect and LISTEN.

        Raises:
            TemporaryFailure: the database cannot be reached (only at start; later drops are
                retried in the background).
        """
        try:
            await self._listen()
        except _CONNECTION_ERRORS as exc:
            raise TemporaryFailure(f"cannot listen for changes on {self._where}: {exc}") from exc
        self._task = asyncio.create_task(self._watch(), name="rmail-store-feed")

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (tests terminate it)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except _CONNECTION_ERRORS:
                conn.terminate()

    # -- the connection ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        conn = await self._connect()
        self._conn = conn              # before the listeners: a drop from now on counts
        try:
            conn.add_termination_listener(self._on_lost)
            await conn.add_listener(CHANNEL, self._on_notice)
        except BaseException:
            self._conn = None
            conn.terminate()
            raise

    def _on_notice(self, conn: object, pid: int, channel: str, payload: object) -> None:
        node, events = decode(str(payload))
        if node == self._db.node:
            return
        self._db.publish(events)

    def _on_lost(self, conn: object) -> None:
        # Connections we dropped ourselves (the old one, after a reconnect) do not count.
        if conn is self._conn:
            self._lost.set()

    async def _watch(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self._ping_interval)
            except asyncio.TimeoutError:
                if await self._alive():
                    continue
            self._lost.clear()
            await self._reconnect()

    async def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=max(1.0, self._ping_interval / 3))
            return True
        except _CONNECTION_ERRORS as exc:
            log.warning("store: change feed from %s stopped answering: %s", self._where, exc)
            return False

    async def _reconnect(self) -> None:
        old, self._conn = self._conn, None
        if old is not None and not old.is_closed():
            old.terminate()
        log.warning("store: change feed from %s lost; reconnecting", self._where)
        delay, longest = self._backoff
        while True:
            try:
                await self._listen()
                break
            except _CONNECTION_ERRORS as exc:
                log.warning("store: cannot reconnect the change feed to %s (%s); next try in %.1f s",
                            self._where, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
        self.reconnects += 1
        log.info("store: change feed from %s is back", self._where)
        # Notices sent while we were away are gone: tell everyone to look again.
        self._db.publish([ExternalChange()])

"""Blocking calls into PostgreSQL for code that cannot await (the DKIM key store).

asyncpg is async only, and the backend's pool belongs to the loop that opened it: a worker
thread may not use it, and the loop's own thread (the CLI calls the key store there) would
deadlock waiting for a coroutine it is itself supposed to run. So a ``SyncBridge`` owns an
event loop on a daemon thread of its own, with a small pool on that loop. ``call`` submits a
coroutine there and waits for it with a timeout; the wait never needs the caller's loop, so
any thread may call, an event-loop thread included (it is blocked for one round trip, as a
file read would block it). The thread starts on first use and the pool connects lazily, so a
node that never needs the bridge holds no connection for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Awaitable, Callable, TypeVar

import asyncpg

from ..errors import RmailError, TemporaryFailure
from .database import SERVER_SETTINGS, as_connection, store_error

__all__ = ["SyncBridge"]

log = logging.getLogger("rmail.store")
T = TypeVar("T")

#: Connections at most: calls are rare and short (a version check per signature, a save per
#: rotation), and every node's pool counts against the server's max_connections.
POOL_SIZE = 2
#: Seconds to connect, and for one statement: a caller that signs mail must not hang on a
#: database that went away (the signer then sends unsigned, see mailauth/signing.py).
CONNECT_TIMEOUT = 10.0
STATEMENT_TIMEOUT = 10.0
#: Seconds a caller waits for a whole call (a connection plus a transaction).
CALL_TIMEOUT = 30.0
#: Seconds ``close`` gives in-flight calls to finish before it drops the connections.
CLOSE_TIMEOUT = 5.0


class SyncBridge:
    """Run coroutines on a connection of a private pool, from any thread, and wait for them."""

    def __init__(self, url: str, *, where: str, name: str = "rmail bridge", call_timeout: float = CALL_TIMEOUT) -> None:
        self._url = url
        self._where = where        # the database as messages name it (never with a password)
        self._name = name
        self._call_timeout = call_timeout
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # Touched on the bridge's loop only.
        self._pool: asyncpg.Pool | None = None
        self._pool_lock: asyncio.Lock | None = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        with self._lock:
            if self._closed:
                raise TemporaryFailure("the store is closed")
            if self._loop is None or self._thread is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_run_loop, args=(loop,), name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop, self._thread

    def call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, failure: str) -> T:
        """``fn(conn)`` on a pooled connection of the bridge's loop; blocks until it is done.

        ``fn`` opens a transaction itself when it needs one. ``failure`` is what the caller is
        told when the database fails (its reason goes to the log).

        Raises:
            TemporaryFailure: the database failed, did not answer in time, or the bridge is
                closed (StorageFull when its disk is full). RmailError raised by ``fn`` passes.
        """
        loop, thread = self._started()
        if threading.current_thread() is thread:
            raise RuntimeError("SyncBridge.call from its own loop would wait for itself")
        future = asyncio.run_coroutine_threadsafe(self._run(fn, failure), loop)
        try:
            return future.result(self._call_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.error("store: %s: %s did not answer within %.0f s", self._name, self._where, self._call_timeout)
            raise TemporaryFailure(failure) from None
        except concurrent.futures.CancelledError:
            raise TemporaryFailure("the store is closed") from None

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], failure: str) -> T:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as proxy:
                # The pool's proxy forwards every Connection method; only the stubs tell them apart.
                return await fn(as_connection(proxy))
        except RmailError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as exc:
            log.error("store: %s: %s: %s", self._name, self._where, exc)
            raise store_error(exc, failure) from None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:       # two first calls at once make one pool
            if self._pool is None:
                settings = {**SERVER_SETTINGS, "application_name": self._name}
                try:
                    self._pool = await asyncpg.create_pool(self._url, min_size=0, max_size=POOL_SIZE,
                                                           server_settings=settings, timeout=CONNECT_TIMEOUT,
                                                           command_timeout=STATEMENT_TIMEOUT)
                except ValueError:
                    # asyncpg's URL parser; its message may quote the URL, password included.
                    raise TemporaryFailure(f"cannot connect to PostgreSQL at {self._where}: the URL is not valid") \
                        from None
            return self._pool

    async def _close_pool(self) -> None:
        if self._pool is None:
            return
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except (asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            self._pool.terminate()

    def close(self) -> None:
        """Close the pool and stop the thread (blocking; idempotent). Calls after it fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_pool(), loop).result(CLOSE_TIMEOUT * 2)
        except Exception as exc:  # noqa: BLE001 - closing must go on: the thread is stopped next
            log.warning("store: %s: closing its connections failed: %s", self._name, exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Whatever was still pending (a call racing ``close``) is cancelled, so its caller's
        # wait ends now rather than at its timeout.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

"""A real server on a free port, run on its own thread and loop, for synchronous clients
(curl, schemathesis over requests, imaplib)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine, Sequence

from rmail.server.core.storage.mail import Outbound
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..helpers.server import make_config


class RecordingOutbound:
    """Stands in for the outbound queue: remembers what would be relayed, sends nothing (its
    entries fall due in ten years, so the real scheduler never picks them up)."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, list[str]]] = []

    def entries_for(self, sender: str, recipients: Sequence[str]) -> Outbound:
        self.queued.append((sender, list(recipients)))
        return Outbound(sender, tuple(recipients), time.time() + 10 * 365 * 86400)

    def wake(self) -> None:
        pass


@dataclass
class LiveServer:
    runtime: ServerRuntime
    loop: asyncio.AbstractEventLoop
    base_url: str
    _stop: Callable[[], None] = field(repr=False, default=lambda: None)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop (store access from the test thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def token(self, username: str, password: str = PASSWORD) -> str:
        req = urllib.request.Request(f"{self.base_url}/auth/login", method="POST",
                                     data=json.dumps({"username": username, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)["token"]


def start_live(data_dir: Path, services: tuple[str, ...] | None = None, **overrides: Any) -> LiveServer:
    """Start a runtime with alice@ and bob@example.com (bob is admin); call ``stop_live`` after."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        kwargs = {"services": services} if services is not None else {}
        try:
            async with ServerRuntime(make_config(data_dir, **overrides), auth_delay=0, **kwargs) as rt:
                await rt.accounts.add_user("alice@example.com", PASSWORD)
                await rt.accounts.add_user("bob@example.com", PASSWORD, admin=True)
                rt.delivery.outbound = RecordingOutbound()
                stop = asyncio.Event()
                box["live"] = LiveServer(rt, asyncio.get_running_loop(),
                                         f"http://127.0.0.1:{rt.port('api')}", stop.set)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="rmail-live", daemon=True)
    thread.start()
    ready.wait(60)
    if "error" in box:
        raise box["error"]
    live: LiveServer = box["live"]
    live._thread = thread  # type: ignore[attr-defined]
    return live


def stop_live(live: LiveServer) -> None:
    live.loop.call_soon_threadsafe(live._stop)
    live._thread.join(30)  # type: ignore[attr-defined]

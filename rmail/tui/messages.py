"""Messages the console's parts send each other (lifecycle of the server it shows)."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class ServerStarted(Message):
    """The embedded runtime is up, or the console attached; panes may read from it."""


class ServerFailed(Message):
    """The runtime could not start (port in use, bad TLS files, locked data dir, ...) or the
    console could not attach. ``running_on``: another server runs on that data dir."""

    def __init__(self, error: str, hint: str = "", *, running_on: Path | None = None) -> None:
        super().__init__()
        self.error = error
        self.hint = hint
        self.running_on = running_on


class ServerStopped(Message):
    """The runtime has shut down (the app is quitting)."""


class FirstRunDone(Message):
    """The first-run wizard created the first user (panes should reload)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

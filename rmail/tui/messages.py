"""Messages the console's parts send each other (lifecycle of the embedded server)."""

from __future__ import annotations

from textual.message import Message


class ServerStarted(Message):
    """The embedded runtime is up; panes may read from it."""


class ServerFailed(Message):
    """The runtime could not start (port in use, bad TLS files, locked data dir, ...)."""

    def __init__(self, error: str, hint: str = "") -> None:
        super().__init__()
        self.error = error
        self.hint = hint


class ServerStopped(Message):
    """The runtime has shut down (the app is quitting)."""


class FirstRunDone(Message):
    """The first-run wizard created the first user (panes should reload)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

"""Connections pane: every open client connection, live; disconnect the selected one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

from rmail.server.core.events import ConnectionClosed, ConnectionOpened, ConnectionUpdated

from ..format import cell, clock_time, size
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from rmail.server.runtime import ServerRuntime


class ConnectionsPane(Pane):
    COLUMNS = ("ID", "Protocol", "Peer", "User", "TLS", "State", "Since", "In", "Out")
    WATCH = (ConnectionOpened, ConnectionUpdated, ConnectionClosed)
    # Byte counters change constantly under load; twice a second reads live without
    # re-rendering a large table on every tick.
    MIN_INTERVAL = 0.5
    EMPTY = "No client is connected."
    BINDINGS = [Binding("x", "disconnect", "Disconnect")]

    async def load(self, runtime: ServerRuntime) -> dict[str, Row]:
        # The registry is in memory: reading it on the loop is cheap even with thousands open.
        return {str(c.id): (cell(c.id), cell(c.protocol), cell(c.peer), cell(c.user or "-"),
                            cell("yes" if c.tls else "no", "green" if c.tls else ""),
                            cell(c.state), cell(clock_time(c.since)), cell(size(c.bytes_in)),
                            cell(size(c.bytes_out)))
                for c in runtime.connections.snapshot()}

    def action_disconnect(self) -> None:
        key = self.require_selection("connection")
        runtime = self.runtime
        if key is None or runtime is None:
            return
        if runtime.connections.disconnect(int(key)):
            self.notify(f"connection {key}: closing")
        else:
            self.notify(f"connection {key} is gone or cannot be closed", severity="warning")
        self.mark_dirty()

"""The header: hostname, server state, uptime, counters, a disk below the free-space reserve,
and every listener with its TLS mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from ..format import TLS_MODES, duration

if TYPE_CHECKING:
    from rmail.server.runtime import Listener, Snapshot


class ServerHeader(Static):
    """Rendered from the runtime's ``snapshot()`` about once a second (uptime ticks)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.state = "starting"
        self._lines = 0

    def show_state(self, hostname: str, state: str) -> None:
        """Before the server runs (starting, failed, stopping)."""
        self.state = state
        text = Text.assemble(("rmail ", "bold"), (hostname, "bold cyan"), "  ", (state, "italic yellow"))
        self.update(text)

    @staticmethod
    def listener_text(listener: Listener) -> Text:
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        return Text.assemble((f"{listener.protocol} ", "bold"), f"{host}:{listener.port} ",
                             (TLS_MODES.get(listener.tls, listener.tls),
                              "green" if listener.tls != "none" else "dim"))

    def show(self, snap: Snapshot, now: float, *, state: str = "running", attached: str | None = None) -> None:
        """``attached``: how the console reaches a server in another process, e.g. its pid."""
        self.state = state
        c = snap.counters
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("rmail ", "bold")
        text.append(snap.hostname, "bold cyan")
        text.append(f"  {state}", "green" if state == "running" else "italic yellow")
        if attached:
            text.append(f" ({attached})", "dim")
        text.append(f"  up {duration(now - snap.started)}  ")
        text.append("connections ", "dim")
        text.append(f"{snap.connections_now}", "bold")
        text.append(f" (peak {snap.connections_peak})\n", "dim")
        storage = snap.storage
        if storage is not None and storage.low:
            # The one condition that refuses mail by itself: a line of its own, never cut off.
            text.append(f"disk low: {storage.free >> 20} MiB free, reserve {storage.reserve >> 20} MiB"
                        " (limits.min_free_space): new mail refused\n", "bold red")
        for label, value in (("received", c.received), ("delivered", c.delivered), ("queued", c.queued),
                             ("bounced", c.bounced), ("auth failures", c.auth_failures)):
            text.append(f"{label} ", "dim")
            text.append(f"{value}  ", "bold")
        text.rstrip()
        text.append("\n")
        if not snap.listeners:
            text.append("no listeners (no protocol service is available)", "yellow")
        # Listeners are packed whole into lines: a wrap inside "imap 127.0.0.1:143" misleads.
        width = max(20, (self.size.width or 80) - 2)
        used = 0
        for listener in snap.listeners:
            item = self.listener_text(listener)
            if used and used + 3 + item.cell_len > width:
                text.append("\n")
                used = 0
            elif used:
                text.append(" · ", "dim")
                used += 3
            text.append_text(item)
            used += item.cell_len
        if snap.tls_fingerprint:
            # What a mail client shows when it asks whether to trust a self-signed certificate.
            text.append("\ncertificate SHA-256 ", "dim")
            text.append(snap.tls_fingerprint)
        # A layout pass re-renders every widget on screen; only pay for it when the height changes.
        lines = text.plain.count("\n") + 1
        self.update(text, layout=lines != self._lines)
        self._lines = lines

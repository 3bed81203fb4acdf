"""A queued message: envelope, delivery state and the message's header."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from rmail.server.core.errors import RmailError

from ..format import date_time, size

if TYPE_CHECKING:
    from rmail.server.runtime import ServerRuntime

    from rmail.server.core.model import QueueEntry

#: Bytes of the message shown; the header of any real message fits.
PREVIEW_BYTES = 8192


class QueueEntryScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, runtime: ServerRuntime, entry: QueueEntry) -> None:
        super().__init__(classes="viewer")
        self.runtime = runtime
        self.entry = entry

    def compose(self) -> ComposeResult:
        e = self.entry
        summary = Text()
        for name, value in (("From", e.sender or "<>"), ("To", e.recipient), ("Size", size(e.size)),
                            ("Queued", date_time(e.created.timestamp())), ("Attempts", str(e.attempts)),
                            ("Next try", date_time(e.next_attempt.timestamp())), ("Last error", e.last_error or "-")):
            summary.append(f"{name:>10}: ", style="bold")
            summary.append(value + "\n")
        with Vertical(classes="dialog"):
            yield Label(f"Queue entry {e.id}", classes="title")
            yield Static(summary, id="summary")
            with VerticalScroll(id="message"):
                yield Static("loading…", id="header", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        self.load_header()

    @work(exit_on_error=False)
    async def load_header(self) -> None:
        try:
            data = await self.runtime.store.read_message(self.entry.blob_id)
        except (RmailError, OSError) as exc:
            self.query_one("#header", Static).update(f"cannot read the message: {exc}")
            return
        head = data[:PREVIEW_BYTES].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        self.query_one("#header", Static).update(Text(head.decode("utf-8", "replace").replace("\r", "")))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

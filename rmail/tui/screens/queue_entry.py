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
    from rmail.server.admin.views import QueueView

    from ..source import ConsoleRuntime


class QueueEntryScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, runtime: ConsoleRuntime, entry: QueueView) -> None:
        super().__init__(classes="viewer")
        self.runtime = runtime
        self.entry = entry

    def compose(self) -> ComposeResult:
        e = self.entry
        summary = Text()
        for name, value in (("From", e.sender or "<>"), ("To", e.recipient), ("Size", size(e.size)),
                            ("Queued", date_time(e.created)), ("Attempts", str(e.attempts)),
                            ("Next try", date_time(e.next_attempt)), ("Last error", e.last_error or "-")):
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
            head = await self.runtime.queue_message_head(self.entry.id)
        except RmailError as exc:
            self.query_one("#header", Static).update(f"cannot read the message: {exc}")
            return
        self.query_one("#header", Static).update(Text(head))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

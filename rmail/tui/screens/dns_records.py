"""A domain's DNS records to publish (the text ``run.py dns DOMAIN`` prints), to copy from."""

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

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class DnsRecordsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, runtime: ConsoleRuntime, domain: str) -> None:
        super().__init__(classes="viewer")
        self.runtime = runtime
        self.domain = domain

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"DNS records for {self.domain}", classes="title", markup=False)
            with VerticalScroll(id="message"):
                yield Static("loading…", id="records", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        self.load()

    @work(exit_on_error=False)
    async def load(self) -> None:
        target = self.query_one("#records", Static)
        try:
            text = await self.runtime.dns_records(self.domain)
        except RmailError as exc:
            target.update(Text(f"cannot list the records: {exc}"))
            return
        target.update(Text(text))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

"""Dry run: "where would mail for this address go?", answered as you type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from rmail.server.core.errors import RmailError

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class ResolveScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, runtime: ConsoleRuntime, address: str = "") -> None:
        super().__init__(classes="form")
        self.runtime = runtime
        self.address = address

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Where would this address go?", classes="title")
            yield Input(value=self.address, placeholder="sales-eu@example.com", id="address",
                        compact=True, max_length=256)
            yield Static("", id="result", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        if self.address:
            self.lookup(self.address)

    @on(Input.Changed)
    @on(Input.Submitted)
    def _changed(self, event: Input.Changed | Input.Submitted) -> None:
        self.lookup(event.value)

    @work(exclusive=True, exit_on_error=False)
    async def lookup(self, address: str) -> None:
        """Latest keystroke wins: an older lookup still running is cancelled."""
        address = address.strip()
        result = self.query_one("#result", Static)
        if not address:
            result.update("")
            return
        try:
            resolution = await self.runtime.resolve(address)
        except RmailError as exc:
            result.update(str(exc))
            result.set_class(True, "-failed")
            return
        result.set_class(not resolution.delivered, "-failed")
        result.update(resolution.text)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

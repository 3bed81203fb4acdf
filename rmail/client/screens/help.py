"""The help screen: every key of every screen, generated from the screens' BINDINGS."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: Keys that are not Textual bindings of our screens but matter to users.
EXTRA_KEYS = {
    "Lists": [("j / k, ↓ / ↑", "Move down / up"), ("enter", "Open folder or message"), ("tab", "Switch pane")],
    "Sign in": [("f2", "Fill from the server's autoconfig"), ("ctrl+q", "Quit")],
}


def _key_label(key: str) -> str:
    names = {"slash": "/", "question_mark": "?", "escape": "esc"}
    return " / ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def bindings_table(sections: dict[str, list[BindingType]]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for title, bindings in sections.items():
        table.add_row(Text(title, style="bold underline"), "")
        for b in bindings:
            if isinstance(b, Binding):
                table.add_row(Text(_key_label(b.key)), Text(b.description or b.action))
        table.add_row("", "")
    for title, rows in EXTRA_KEYS.items():
        table.add_row(Text(title, style="bold underline"), "")
        for key, desc in rows:
            table.add_row(Text(key), Text(desc))
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Any of q, ?, escape closes it."""

    BINDINGS = [Binding("q,escape,question_mark", "close", "Close")]

    def __init__(self, sections: dict[str, list[BindingType]]) -> None:
        super().__init__(id="help", classes="dialog")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("rmail client — keys", style="bold"), id="help-title")
            yield Static(bindings_table(self.sections), id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)

"""Small modal dialogs: prompt, confirm, pick a folder, trust a certificate."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from rmail.client.model import Folder
from rmail.client.tlstrust import pretty


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text; dismisses with the text, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", *, password: bool = False) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._value = value
        self._placeholder = placeholder
        self._password = password

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(Text(self._title), classes="dialog-title")
            yield Input(self._value, placeholder=self._placeholder, password=self._password, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; y confirms, n/escape refuses. The safe answer (No) has the focus, so an
    Enter typed ahead never discards a message or trusts a certificate."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog")
        self._question, self._yes, self._no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Static(Text(self._question), classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._yes, variant="primary", id="yes")
                yield Button(self._no, id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class TrustScreen(ConfirmScreen):
    """Show a certificate fingerprint and ask whether to trust it for this account."""

    def __init__(self, server: str, fingerprint: str, *, mismatch: bool = False) -> None:
        warning = (
            "WARNING: the certificate CHANGED since you trusted it. This can be an attack.\n\n"
            if mismatch
            else "The server's certificate is not signed by a known authority (self-signed?).\n\n"
        )
        super().__init__(
            f"{warning}Server: {server}\nSHA-256 fingerprint:\n{pretty(fingerprint)}\n\n"
            "Compare it with the server's: rmail logs it at start and its console header shows it.\n"
            "Trust this certificate?",
            yes="Trust",
            no="Cancel",
        )


class FolderPickerScreen(ModalScreen[str | None]):
    """Choose a destination folder for move/copy."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, folders: Sequence[Folder], exclude: str = "") -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._folders = [f for f in folders if f.selectable and f.name != exclude]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(Text(self._title), classes="dialog-title")
            yield OptionList(*(Option(Text(f.name), id=f.name) for f in self._folders), id="folder-options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)

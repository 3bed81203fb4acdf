"""First run (no users yet): create the first domain and admin user, optionally a self-signed
TLS certificate, then show how to connect. The certificate is made by the server (it goes to
the server's data dir, also when the console is attached: AdminService.make_certificate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Label, Static

from rmail.server.core.errors import InvalidInput, RmailError

from ..format import TLS_MODES
from .form import FormScreen, field

if TYPE_CHECKING:
    from rmail.server.runtime import Listener

    from ..source import ConsoleRuntime


def connect_help(listeners: Sequence[Listener], address: str) -> Text:
    text = Text()
    text.append("Connect\n", "bold")
    if not listeners:
        text.append("  no protocol service is listening yet\n", "yellow")
    for listener in listeners:
        text.append(f"  {listener.protocol:<11}", "bold")
        text.append(f"{listener.host}:{listener.port}  {TLS_MODES.get(listener.tls, listener.tls)}\n")
    text.append("\nMail client:  ", "bold")
    text.append(f"python -m rmail.client --user {address}\n")
    return text


class WizardScreen(FormScreen):
    """Dismissed with the new admin's address, or None when skipped."""

    TITLE = "Welcome to rmail: create the first user"
    SUBMIT = "Create"

    def __init__(self, runtime: ConsoleRuntime, config_path: Path | None = None) -> None:
        super().__init__(runtime)
        self.config_path = config_path
        self.address = ""
        self.add_class("wizard")

    def fields(self) -> ComposeResult:
        yield from field("Admin address", "address", placeholder="postmaster@example.com")
        yield from field("Password", "password", password=True)
        yield from field("Again", "password2", password=True)

    def extras(self) -> ComposeResult:
        yield Static("The domain of this address becomes the first local domain; this user may"
                     " manage aliases.", classes="hint")
        if not self.runtime.info().tls_configured:
            yield Checkbox("Generate a self-signed TLS certificate (STARTTLS, ports 465 and 993)",
                           value=True, id="tls", compact=True)

    def compose(self) -> ComposeResult:
        yield from super().compose()
        with Vertical(classes="dialog", id="summary"):
            yield Label("rmail is ready", classes="title")
            with VerticalScroll(id="summary-scroll"):
                yield Static("", id="summary-text", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Done", variant="primary", id="done", compact=True)

    def on_mount(self) -> None:
        self.query_one("#summary").display = False
        cancel = self.query_one("#cancel", Button)
        cancel.label = "Skip"

    async def submit(self) -> str:
        address, password = self.value("address").strip(), self.value("password")
        if password != self.value("password2"):
            raise InvalidInput("the two passwords differ")
        account = await self.runtime.add_user(address, password, admin=True)
        self.address = account.address
        report = Text()
        report.append(f"Created domain {account.domain} and administrator {account.address}.\n\n")
        if self.query("#tls") and self.checked("tls"):
            report.append_text(await self._make_certificate())
        snap = self.runtime.snapshot()
        report.append_text(connect_help(snap.listeners if snap is not None else (), account.address))
        self._report = report
        return account.address

    async def _make_certificate(self) -> Text:
        text = Text()
        try:
            made = await self.runtime.make_certificate(str(self.config_path) if self.config_path else None)
        except RmailError as exc:
            # The user exists by now: report the certificate's failure in the summary.
            text.append(f"No certificate: {exc}\n\n", "bold red")
            return text
        text.append(f"Self-signed certificate for {made.hostname} written to {made.keys_dir} (key mode 0600).\n")
        if made.written:
            text.append(f"Wrote {made.config_path} with these lines:\n")
        else:
            text.append(f"Add these lines to {made.config_path}:\n")
        text.append(made.lines, "bold")
        restart = ("Restart the server (e.g. systemctl restart rmail)" if self.runtime.attached
                   else "Restart rmail (q, then python run.py)")
        text.append(f"{restart} to turn TLS on.\n\n", "yellow")
        return text

    def done(self, result: str) -> None:
        self.query_one("#form").display = False
        self.query_one("#summary").display = True
        self.query_one("#summary-text", Static).update(self._report)
        self.query_one("#done", Button).focus()

    @on(Button.Pressed, "#done")
    def _finished(self) -> None:
        self.dismiss(self.address)

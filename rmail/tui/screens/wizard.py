"""First run (no users yet): create the first domain and admin user, optionally a self-signed
TLS certificate, then show how to connect."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Label, Static

from rmail.server.core.errors import InvalidInput
from rmail.server.tls import generate_self_signed

from ..format import TLS_MODES
from .form import FormScreen, field

if TYPE_CHECKING:
    from rmail.server.runtime import Listener, ServerRuntime

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for any path)."""
    return json.dumps(value, ensure_ascii=False)


def tls_lines(cert: Path, key: Path) -> str:
    return f"[tls]\ncert = {toml_string(str(cert))}\nkey = {toml_string(str(key))}\n"


def write_new_config(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists already (never overwrite a user's file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write("# Written by the rmail first-run wizard.\n" + text)
    except FileExistsError:
        return False
    return True


def connect_help(listeners: list[Listener], address: str) -> Text:
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

    def __init__(self, runtime: ServerRuntime, config_path: Path) -> None:
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
        if not self.runtime.config.tls.configured:
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
        account = await self.runtime.accounts.add_user(address, password, admin=True)
        self.address = account.address
        report = Text()
        report.append(f"Created domain {account.domain} and administrator {account.address}.\n\n")
        if self.query("#tls") and self.checked("tls"):
            report.append_text(await self._make_certificate())
        report.append_text(connect_help(list(self.runtime.listeners), account.address))
        self._report = report
        return account.address

    async def _make_certificate(self) -> Text:
        cfg = self.runtime.config
        keys = cfg.data_dir / "keys"
        cert, key = keys / CERT_NAME, keys / KEY_NAME
        # Key generation and file writes stay off the loop.
        await asyncio.to_thread(generate_self_signed, cert, key, cfg.hostname)
        lines = tls_lines(cert, key)
        text = Text()
        text.append(f"Self-signed certificate for {cfg.hostname} written to {keys} (key mode 0600).\n")
        if cfg.source is None and await asyncio.to_thread(write_new_config, self.config_path, lines):
            text.append(f"Wrote {self.config_path} with these lines:\n")
        else:
            where = cfg.source or self.config_path
            text.append(f"Add these lines to {where}:\n")
        text.append(lines, "bold")
        text.append("Restart rmail (q, then python run.py) to turn TLS on.\n\n", "yellow")
        return text

    def done(self, result: str) -> None:
        self.query_one("#form").display = False
        self.query_one("#summary").display = True
        self.query_one("#summary-text", Static).update(self._report)
        self.query_one("#done", Button).focus()

    @on(Button.Pressed, "#done")
    def _finished(self) -> None:
        self.dismiss(self.address)

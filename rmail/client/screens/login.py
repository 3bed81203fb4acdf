"""The account screen: server, ports, security, user and password; autoconfig fill."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from rmail.client.accounts import apply_autoconfig, default_api_port, default_ports, fetch_autoconfig
from rmail.client.screens.base import ClientScreen
from rmail.client.model import AccountSettings, Security


class LoginScreen(ClientScreen):
    """Fill the form and press Connect; the app does the connecting."""

    BINDINGS = [
        Binding("ctrl+q", "app.quit", "Quit"),
        Binding("f2", "autoconfig", "Autoconfig"),
    ]

    def __init__(self, settings: AccountSettings, remembered: list[AccountSettings]) -> None:
        super().__init__(id="login")
        self.settings = settings
        self.remembered = remembered

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(id="login-box"):
            yield Static("rmail — sign in", id="login-title")
            if self.remembered:
                yield Select(
                    [(Text(a.key), k) for k, a in enumerate(self.remembered)],
                    prompt="Remembered accounts",
                    id="remembered",
                )
            with Grid(id="login-form"):
                yield Label("Server")
                yield Input(s.server, id="server")
                yield Label("IMAP port")
                yield Input(str(s.imap_port), id="imap-port", type="integer")
                yield Label("SMTP port")
                yield Input(str(s.smtp_port), id="smtp-port", type="integer")
                yield Label("Security")
                yield Select(
                    [("STARTTLS", Security.STARTTLS.value), ("TLS (implicit)", Security.TLS.value), ("None", Security.NONE.value)],
                    value=s.security.value,
                    allow_blank=False,
                    id="security",
                )
                yield Label("User")
                yield Input(s.user, placeholder="alice@example.com", id="user")
                yield Label("Password")
                yield Input(password=True, id="password")
            yield Checkbox("Remember this account (never the password)", value=True, id="remember")
            with Horizontal(id="login-buttons"):
                yield Button("Connect", variant="primary", id="connect")
                yield Button("Autoconfig", id="autoconfig")
            yield Static("", id="login-error")
        yield Footer()

    def on_mount(self) -> None:
        target = "#password" if self.settings.user else "#user"
        self.query_one(target, Input).focus()

    # -- form ----------------------------------------------------------------------------
    def read_form(self) -> AccountSettings:
        """The settings as typed; raises ValueError with a message for the user."""
        server = self.query_one("#server", Input).value.strip()
        user = self.query_one("#user", Input).value.strip()
        if not server:
            raise ValueError("Enter the server name.")
        if not user:
            raise ValueError("Enter your user name (usually your email address).")
        ports = []
        for sel, name in (("#imap-port", "IMAP"), ("#smtp-port", "SMTP")):
            try:
                port = int(self.query_one(sel, Input).value)
            except ValueError:
                raise ValueError(f"{name} port must be a number.") from None
            if not 0 < port < 65536:
                raise ValueError(f"{name} port must be between 1 and 65535.")
            ports.append(port)
        security = Security(self.query_one("#security", Select).value)
        same_server = server == self.settings.server
        return replace(
            self.settings,
            server=server,
            imap_port=ports[0],
            smtp_port=ports[1],
            security=security,
            user=user,
            fingerprint=self.settings.fingerprint if same_server else "",
        )

    def fill(self, s: AccountSettings) -> None:
        self.settings = s
        self.query_one("#server", Input).value = s.server
        self.query_one("#imap-port", Input).value = str(s.imap_port)
        self.query_one("#smtp-port", Input).value = str(s.smtp_port)
        self.query_one("#security", Select).value = s.security.value
        self.query_one("#user", Input).value = s.user

    def show_error(self, message: str) -> None:
        self.query_one("#login-error", Static).update(Text(message))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "remembered" and isinstance(event.value, int):
            self.fill(self.remembered[event.value])
            self.query_one("#password", Input).focus()
        elif event.select.id == "security" and isinstance(event.value, str):
            # Follow the security choice only while the ports are still some default pair,
            # so ports typed by hand or filled by autoconfig are never overwritten.
            server = self.query_one("#server", Input).value.strip() or self.settings.server
            current = (self.query_one("#imap-port", Input).value, self.query_one("#smtp-port", Input).value)
            defaults = {tuple(map(str, default_ports(server, sec))) for sec in Security}
            if current in defaults:
                imap, smtp = default_ports(server, Security(event.value))
                self.query_one("#imap-port", Input).value = str(imap)
                self.query_one("#smtp-port", Input).value = str(smtp)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "password":
            self.action_connect()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "connect":
            self.action_connect()
        elif event.button.id == "autoconfig":
            self.action_autoconfig()

    def action_connect(self) -> None:
        try:
            settings = self.read_form()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        password = self.query_one("#password", Input).value
        if not password:
            self.show_error("Enter your password.")
            return
        self.show_error("Connecting…")
        remember = self.query_one("#remember", Checkbox).value
        self.app.connect_account(settings, password, remember=remember)  # type: ignore[attr-defined]

    # -- autoconfig ----------------------------------------------------------------------
    def action_autoconfig(self) -> None:
        server = self.query_one("#server", Input).value.strip()
        if not server:
            self.show_error("Enter the server name first.")
            return
        self.show_error(f"Fetching autoconfig from {server}…")
        self._autoconfig(server, self.query_one("#user", Input).value.strip())

    @work(thread=True, exclusive=True, group="autoconfig", exit_on_error=False)
    def _autoconfig(self, server: str, user: str) -> None:
        try:
            auto = fetch_autoconfig(server, default_api_port(server), user)
        except ValueError as exc:
            self.app.call_from_thread(self.show_error, f"Autoconfig failed: {exc}")
            return

        def apply() -> None:
            self.fill(apply_autoconfig(replace(self.settings, user=user or self.settings.user), auto))
            self.show_error("Filled from the server's autoconfig.")

        self.app.call_from_thread(apply)

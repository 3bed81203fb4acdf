"""MailClientApp: wires the screens to a MailBackend built by an injected factory.

The factory (``(settings, password) -> MailBackend``) is the seam for tests: Pilot tests pass
an in-memory backend, ``__main__`` passes ``ImapSmtpBackend``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState

from rmail.client.accounts import AccountStore
from rmail.client.backend import AuthenticationFailed, MailBackend, MailError, UntrustedCertificate
from rmail.client.compose import Attachment, Draft, draft_from_message, forward, reply
from rmail.client.mime import all_attachments, parse_message
from rmail.client.model import AccountSettings
from rmail.client.screens.compose import ComposeScreen
from rmail.client.screens.help import HelpScreen
from rmail.client.screens.login import LoginScreen
from rmail.client.screens.main import MainScreen
from rmail.client.screens.modals import TrustScreen
from rmail.client.screens.reader import ReaderScreen

BackendFactory = Callable[[AccountSettings, str], MailBackend]


class MailClientApp(App[None]):
    """The terminal mail client."""

    CSS_PATH = "client.tcss"
    TITLE = "rmail client"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True)]

    def __init__(
        self,
        backend_factory: BackendFactory,
        *,
        settings: AccountSettings,
        password: str | None = None,
        accounts: AccountStore | None = None,
        page_size: int = 200,
        download_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.backend_factory = backend_factory
        self.settings = settings
        self.initial_password = password
        self.accounts = accounts
        self.page_size = page_size
        downloads = Path.home() / "Downloads"
        self.download_dir = download_dir or (downloads if downloads.is_dir() else Path.cwd())
        self._backend: MailBackend | None = None
        self._main: MainScreen | None = None
        #: Unexpected worker exceptions (bugs), kept for tests; users see a notification.
        self.worker_errors: list[BaseException] = []

    # -- accessors -----------------------------------------------------------------------
    @property
    def backend(self) -> MailBackend:
        if self._backend is None:
            raise MailError("not connected")
        return self._backend

    @property
    def main_screen(self) -> MainScreen:
        assert self._main is not None
        return self._main

    def account_label(self) -> str:
        s = self.settings
        return f"{s.user} · {s.server} · IMAP {s.imap_port} · SMTP {s.smtp_port} · security {s.security.value}"

    # -- start-up and login --------------------------------------------------------------
    def on_mount(self) -> None:
        remembered = self.accounts.load() if self.accounts is not None else []
        self.push_screen(LoginScreen(self.settings, remembered))
        if self.initial_password and self.settings.user:
            self.connect_account(self.settings, self.initial_password, remember=self.accounts is not None)

    def connect_account(self, settings: AccountSettings, password: str, *, remember: bool) -> None:
        self._connect(settings, password, remember)

    @work(thread=True, exclusive=True, group="connect", exit_on_error=False)
    def _connect(self, settings: AccountSettings, password: str, remember: bool) -> None:
        backend = self.backend_factory(settings, password)
        try:
            backend.connect()
        except UntrustedCertificate as exc:
            self.call_from_thread(self._ask_trust, settings, password, remember, exc)
            return
        except MailError as exc:
            self.call_from_thread(self._login_failed, exc)
            return
        if remember and self.accounts is not None:
            try:
                self.accounts.remember(settings)
            except OSError as exc:
                self.call_from_thread(self.notify, f"Could not remember the account: {exc}", severity="warning")
        self.call_from_thread(self._connected, backend, settings)

    def _ask_trust(self, settings: AccountSettings, password: str, remember: bool, exc: UntrustedCertificate) -> None:
        def answered(trust: bool | None) -> None:
            if trust:
                self._connect(replace(settings, fingerprint=exc.fingerprint), password, remember)
            else:
                self._login_failed(MailError("Not connected: the certificate was not trusted."))

        self.push_screen(TrustScreen(settings.server, exc.fingerprint, mismatch=exc.mismatch), answered)

    def _login_failed(self, exc: MailError) -> None:
        title = "Wrong user name or password" if isinstance(exc, AuthenticationFailed) else "Cannot connect"
        self.notify(str(exc), title=title, severity="error", timeout=8)
        screen = self.screen
        if isinstance(screen, LoginScreen):
            screen.show_error(f"{title}: {exc}")

    def _connected(self, backend: MailBackend, settings: AccountSettings) -> None:
        old, self._backend = self._backend, backend
        if old is not None:
            self._close_quietly(old)
        self.settings = settings
        self._main = MainScreen()
        self.switch_screen(self._main)

    @work(thread=True, exit_on_error=False)
    def _close_quietly(self, backend: MailBackend) -> None:
        backend.close()

    def close_backend(self) -> None:
        """Log out (blocking); call after the app has stopped."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- compose entry points ------------------------------------------------------------
    def start_compose(self) -> None:
        self.push_screen(ComposeScreen(Draft(sender=self.settings.user)))

    def start_reply(self, folder: str, uid: int, *, reply_all: bool) -> None:
        self._prepare(folder, uid, "reply-all" if reply_all else "reply")

    def start_forward(self, folder: str, uid: int) -> None:
        self._prepare(folder, uid, "forward")

    def edit_draft(self, folder: str, uid: int) -> None:
        self._prepare(folder, uid, "draft")

    @work(thread=True, exclusive=True, group="prepare", exit_on_error=False)
    def _prepare(self, folder: str, uid: int, kind: str) -> None:
        me = self.settings.user
        try:
            raw = self.backend.fetch_message(folder, uid)
        except MailError as exc:
            self.call_from_thread(self.notify, str(exc), title="Cannot open the message", severity="error")
            return
        original = parse_message(raw)
        files = tuple(Attachment(*a) for a in all_attachments(raw)) if kind in ("forward", "draft") else ()
        if kind == "forward":
            draft, answering, replacing = forward(original, me, files), None, None
        elif kind == "draft":
            draft, answering, replacing = draft_from_message(original, me, files), None, (folder, uid)
        else:
            draft, answering, replacing = reply(original, me, reply_all=kind == "reply-all"), (folder, uid), None
        # Screens are built on the UI thread: widgets must not be created in a worker.
        self.call_from_thread(self._open_compose, draft, answering, replacing)

    def _open_compose(self, draft: Draft, answering: tuple[str, int] | None, replacing: tuple[str, int] | None) -> None:
        self.push_screen(ComposeScreen(draft, answering=answering, replacing=replacing))

    # -- help and errors -----------------------------------------------------------------
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications carry server text (error replies, subjects): never parse markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help(self) -> None:
        self.push_screen(
            HelpScreen(
                {
                    "Message list": list(MainScreen.BINDINGS),
                    "Reader": list(ReaderScreen.BINDINGS),
                    "Compose": list(ComposeScreen.BINDINGS),
                }
            )
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.report_worker_error(event.worker)

    def report_worker_error(self, worker: Worker[object]) -> None:
        """A bug in a worker must not kill the client: show it and carry on."""
        if worker.error is not None:
            self.worker_errors.append(worker.error)
            self.notify(f"{type(worker.error).__name__}: {worker.error}", title="Internal error", severity="error")

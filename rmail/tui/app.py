"""The console: one Textual app that shows a mail server live and administers it.

Two ways to run: embedded, the app runs the server in its own asyncio loop (``python run.py``);
attached, it talks to a server already running headless over the data dir's admin socket
(``rmail console``, or ``python run.py`` when a server runs). Panes see a ``ConsoleRuntime``
(source.py) either way and cannot tell the difference.

Lifecycle: a worker starts the ``ServerRuntime`` (or adopts one already running, in tests),
or attaches, then waits; quitting (q, ctrl+c, the palette) asks the embedded server to stop and
the app exits once it has shut down gracefully; attached, quitting only closes the connection.
A start error (port in use, bad TLS files, a bad config) is shown in a dialog, never as a
traceback; when another server holds the data dir, the dialog offers to attach to it.

Updates: one ``Feed`` of events is drained by a timer a few times a second. Events only mark
panes dirty; the active pane reloads from the source of truth, rate-limited, so the cost of the
UI does not grow with the event rate and the server never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Callable, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import TabbedContent, TabPane

from textual.notifications import SeverityLevel

from rmail.server.admin import socket_path
from rmail.server.config import Config, ConfigError
from rmail.server.core.errors import RmailError
from rmail.server.core.events import Event, LogRecord, MessageReceived
from rmail.server.reload import reload_from_file
from rmail.server.runtime import AlreadyRunning, ServerRuntime

from .commands import ConsoleCommands
from .messages import FirstRunDone, ServerFailed, ServerStarted
from .remote import AttachError, RemoteRuntime, probe
from .screens.attach import AttachScreen
from .screens.error import ErrorScreen
from .screens.wizard import WizardScreen
from .source import ConsoleRuntime, LocalRuntime
from .widgets.aliases import AliasesPane
from .widgets.connections import ConnectionsPane
from .widgets.header import ServerHeader
from .widgets.keys import KeyBar
from .widgets.log import LogPane
from .widgets.metrics import MetricsPane
from .widgets.pane import Pane
from .widgets.queue import QueuePane
from .widgets.users import UsersPane

log = logging.getLogger("rmail.console")

#: The console's stylesheet. The file lives at the project root (next to run.py); the package
#: holds a link to it so an installed wheel carries a copy.
STYLESHEET = Path(__file__).with_name("rmail.tcss")
#: Seconds between two drains of the event feed.
TICK = 0.25
#: Events buffered between drains before the feed drops the oldest and panes resynchronise.
FEED_SIZE = 20000

#: Seconds a notice stays up; the same notice again meanwhile is not shown twice.
NOTICE_SECONDS = 5.0
#: Notices remembered in ``ConsoleApp.notices`` (at least this many, at most twice).
MAX_NOTICES_KEPT = 100

RuntimeSource = ServerRuntime | Callable[[], ServerRuntime] | RemoteRuntime

TABS = (("connections", "Connections", ConnectionsPane), ("queue", "Queue", QueuePane),
        ("users", "Users", UsersPane), ("aliases", "Aliases", AliasesPane), ("log", "Log", LogPane),
        ("metrics", "Metrics", MetricsPane))


def activity_record(event: Event, now: float) -> LogRecord | None:
    """Mail traffic as Log pane lines: the server does not log every message, the console shows it."""
    if isinstance(event, MessageReceived):
        return LogRecord("INFO", f"rmail.{event.protocol}",
                         f"message from <{event.sender}> accepted: {event.local_recipients} local, "
                         f"{event.remote_recipients} remote recipient(s), {event.size} bytes", now)
    # Failed logins reach the Log pane as the rmail.auth log line itself (one per failure).
    return None


#: Messages per drain shown one line each; more become one summary line (a flood is a count).
MESSAGE_LINES = 5


def received_records(received: list[MessageReceived], now: float) -> list[LogRecord]:
    if len(received) <= MESSAGE_LINES:
        return [r for r in (activity_record(e, now) for e in received) if r is not None]
    per_protocol: dict[str, int] = {}
    for event in received:
        per_protocol[event.protocol] = per_protocol.get(event.protocol, 0) + 1
    detail = ", ".join(f"{n} over {p}" for p, n in sorted(per_protocol.items()))
    size = sum(e.size for e in received)
    return [LogRecord("INFO", "rmail.console", f"{len(received)} messages accepted ({detail}), {size} bytes", now)]


def describe_start_error(exc: BaseException) -> tuple[str, str]:
    """A start failure as (message, hint) for the error dialog."""
    if isinstance(exc, AlreadyRunning):
        return str(exc), "Attach to it: the console shows that server, which keeps running when you leave."
    if isinstance(exc, AttachError):
        return str(exc), ("Start the server (rmail serve, or systemctl start rmail), or run rmail without a "
                          "command for a console with the server inside.")
    if isinstance(exc, ConfigError):
        return f"config: {exc}", "Fix rmail.toml (or the environment) and start rmail again."
    if isinstance(exc, OSError):
        hint = ("Another program may already use that port: stop it, or choose other ports in "
                "rmail.toml [ports]." if exc.errno in (98, 48, 10048) else
                "Check the addresses in rmail.toml (listen) and the data dir permissions.")
        return f"cannot start: {exc}", hint
    return f"{type(exc).__name__}: {exc}", "This is a bug in rmail; the Log pane has the details."


class ConsoleApp(App[int]):
    """``ConsoleApp(runtime_factory)`` owns the runtime it builds; ``ConsoleApp(runtime)`` with a
    runtime that is already started only shows it (tests), and leaves stopping it to the caller;
    ``ConsoleApp(RemoteRuntime(socket))`` attaches to a server in another process."""

    TITLE = "rmail"
    CSS_PATH = STYLESHEET if STYLESHEET.is_file() else None
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS: ClassVar = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        *(Binding(str(i + 1), f"show_tab({tab!r})", title, show=False) for i, (tab, title, _) in enumerate(TABS)),
    ]

    def __init__(self, runtime: RuntimeSource, *, notice: str | None = None,
                 clock: Callable[[], float] = time.time, config_path: Path | None = None,
                 first_run: bool = True, tick: float = TICK) -> None:
        super().__init__()
        # The tab underline glides at 60 frames/s for 0.3 s after each switch: CPU the server
        # under load needs more than the console needs the effect.
        self.animation_level = "none"
        self.remote: RemoteRuntime | None = None
        self._factory: Callable[[], ServerRuntime] | None = None
        if isinstance(runtime, RemoteRuntime):
            self.remote = runtime
            self.owned = False
        elif isinstance(runtime, ServerRuntime):
            self._factory = lambda: runtime
            self.owned = not runtime.started
        else:
            self._factory = runtime
            self.owned = True
        self.notice = notice
        self.clock = clock
        self.config_path = config_path
        self.first_run = first_run
        self.tick_interval = tick
        #: What the panes show: the embedded server or the one attached to (None: neither yet).
        self.runtime: ConsoleRuntime | None = None
        #: The embedded server (None when attached).
        self.server: ServerRuntime | None = None
        self.failure: str | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._release_logs: Callable[[], None] | None = None
        self._saved_level = logging.NOTSET
        self._last_header = 0.0
        self._generation = 0             # the attached connection the app last saw
        self._notices: dict[tuple[str, str], float] = {}
        #: Every notice shown, oldest first (tests check there is one per action).
        self.notices: list[tuple[str, str]] = []

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept by reference: app.query_one() searches the top screen, which is a dialog at times.
        self.header = ServerHeader(id="header")
        self.tabs = TabbedContent(initial="connections")
        self.panes: dict[str, Pane | LogPane] = {tab: pane(id=f"{tab}-pane") for tab, _, pane in TABS}
        yield self.header
        with self.tabs:
            for tab, title, _ in TABS:
                with TabPane(title, id=tab):
                    yield self.panes[tab]
        yield KeyBar(id="keys")

    def pane(self, tab: str) -> Pane | LogPane:
        return self.panes[tab]

    @property
    def table_panes(self) -> list[Pane]:
        return [p for p in self.panes.values() if isinstance(p, Pane)]

    def selection(self, tab: str) -> str | None:
        pane = self.pane(tab)
        return pane.selected if isinstance(pane, Pane) else None

    def on_mount(self) -> None:
        self.header.show_state("", "attaching…" if self.remote is not None else "starting the server…")
        if self.notice:
            self.notify(self.notice, timeout=10)
        self.serve()
        self.set_interval(self.tick_interval, self.pump)

    def on_resize(self) -> None:
        # More room: the header and tables simply get more lines; very small terminals hide
        # the tab bar's padding through this class (see rmail.tcss).
        self.screen.set_class(self.size.height < 24 or self.size.width < 80, "-cramped")

    # -- the server's lifecycle --------------------------------------------------------------

    @work(group="server", exit_on_error=False)
    async def serve(self) -> None:
        if self.remote is not None:
            await self._run_attached(self.remote)
            return
        assert self._factory is not None
        try:
            runtime = self._factory()
            self._forward_logs(runtime)
            if self.owned:
                await runtime.start()
        except Exception as exc:  # noqa: BLE001 - any start failure is shown, never raised over the screen
            if not isinstance(exc, AlreadyRunning):
                log.error("server failed to start: %s", exc, exc_info=not isinstance(exc, (ConfigError, OSError)))
            self._stop_forwarding_logs()
            running = exc.data_dir if isinstance(exc, AlreadyRunning) else None
            self.post_message(ServerFailed(*describe_start_error(exc), running_on=running))
            return
        local = LocalRuntime(runtime, feed_size=FEED_SIZE)
        self.server, self.runtime = runtime, local
        self.post_message(ServerStarted())
        if not self.owned:
            return
        hup = self._reload_on_hup(runtime)
        try:
            await self._stop.wait()
        finally:
            if hup is not None:
                hup.cancel()
            # Panes stop reading before the store closes.
            self.runtime = self.server = None
            local.close()
            await runtime.stop()
            self._stop_forwarding_logs()

    def _reload_on_hup(self, runtime: ServerRuntime) -> asyncio.Task[None] | None:
        """SIGHUP reloads the embedded server's config and certificate, as it does for
        ``serve`` (its default action would end the console). Signal handlers belong to the
        main thread's loop: a console run elsewhere (embedded in another program) says so in
        the log and leaves SIGHUP alone. Returns the watching task, if any."""
        hup = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        except (NotImplementedError, RuntimeError) as exc:
            log.info("console: SIGHUP will not reload the embedded server here (%s)", exc)
            return None

        async def watch() -> None:
            try:
                while True:
                    await hup.wait()
                    hup.clear()
                    if await reload_from_file(runtime, runtime.config.source):
                        self.notify("SIGHUP: configuration and certificate reloaded", timeout=5)
                    else:
                        self.notify("SIGHUP: reload incomplete; see the Log pane", severity="warning", timeout=10)
            finally:
                if not loop.is_closed():
                    loop.remove_signal_handler(signal.SIGHUP)
        return asyncio.create_task(watch(), name="rmail-console-reload")

    async def _run_attached(self, remote: RemoteRuntime) -> None:
        """Connect to the server at ``remote``; then keep the connection (reconnecting) until
        the app leaves. The server keeps running either way."""
        try:
            await remote.connect()
        except AttachError as exc:
            self.post_message(ServerFailed(*describe_start_error(exc)))
            return
        self._generation = remote.generation
        self.runtime = remote
        info = remote.info()
        self.notify(f"attached to the rmail server on {info.data_dir} (pid {info.pid}); "
                    "q leaves it running", timeout=10)
        self.post_message(ServerStarted())
        try:
            await remote.run()
        finally:
            self.runtime = None

    def attach(self, data_dir: Path) -> None:
        """Switch to the server running on ``data_dir`` (after "already running")."""
        self.remote = RemoteRuntime(socket_path(data_dir), feed_size=FEED_SIZE)
        self.owned = False
        self.failure = None
        self.header.show_state("", "attaching…")
        self.serve()

    def _forward_logs(self, runtime: ServerRuntime) -> None:
        # Everything logged reaches the Log pane (runtime.forward_logs); while the console
        # runs, nothing may print to the terminal Textual is drawing on.
        self._release_logs = runtime.forward_logs()
        rmail_logger = logging.getLogger("rmail")
        self._saved_level = rmail_logger.level
        if rmail_logger.getEffectiveLevel() > logging.INFO:
            rmail_logger.setLevel(logging.INFO)

    def _stop_forwarding_logs(self) -> None:
        if self._release_logs is not None:
            self._release_logs()
            logging.getLogger("rmail").setLevel(self._saved_level)
            self._release_logs = None

    def on_unmount(self) -> None:
        self._stop.set()
        if self.remote is not None:
            self.remote.close()
        elif not self.owned and isinstance(self.runtime, LocalRuntime):
            self.runtime.close()
        self._stop_forwarding_logs()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """One notice per thing that happened: the same text again while it is still shown
        (a key pressed twice, a reload failing every second) is dropped. Never markup: notices
        carry addresses and patterns as typed (``[bold]x[/bold]`` is a valid alias pattern)."""
        now = time.monotonic()
        key = (message, severity)
        if self._notices.get(key, 0.0) > now:
            return
        self._notices = {k: until for k, until in self._notices.items() if until > now}
        shown = NOTICE_SECONDS if timeout is None else timeout
        self._notices[key] = now + shown
        self.notices.append(key)
        if len(self.notices) > 2 * MAX_NOTICES_KEPT:
            del self.notices[:MAX_NOTICES_KEPT]
        super().notify(message, title=title, severity=severity, timeout=shown, markup=False)

    @on(ServerStarted)
    def _started(self) -> None:
        self._last_header = -1.0
        self.pump()
        for pane in self.table_panes:
            pane.mark_dirty()
        self.active_pane_tick()
        if self.first_run:
            self.offer_wizard()

    @on(ServerFailed)
    def _failed(self, message: ServerFailed) -> None:
        self.failure = message.error
        self.header.show_state("?", f"not running: {message.error}")
        if message.running_on is not None:
            data_dir = message.running_on

            def chosen(choice: str | None) -> None:
                if choice == "attach":
                    self.attach(data_dir)
                elif choice == "quit":
                    self.exit(1, return_code=1)
            self.push_screen(AttachScreen(data_dir), chosen)
            return

        def answered(quit_now: bool | None) -> None:
            if quit_now:
                self.exit(1, return_code=1)
        title = "Cannot attach to the server" if self.remote is not None else "The server could not start"
        self.push_screen(ErrorScreen(title, message.error, message.hint), answered)

    async def action_quit(self) -> None:
        self.shutdown()

    @work(group="shutdown", exclusive=True, exit_on_error=False)
    async def shutdown(self) -> None:
        """Stop the server gracefully (in-flight deliveries finish), then leave."""
        if self._stopping:
            return
        self._stopping = True
        if self.server is not None and self.owned:
            self.header.show_state(self.server.config.hostname, "stopping: finishing in-flight work…")
        self._stop.set()
        if self.remote is not None:
            self.remote.close()
        for worker in self.workers:
            if worker.group == "server":
                await worker.wait()
        code = 1 if self.failure else 0
        self.exit(code, return_code=code)

    async def wait_until_ready(self, timeout: float = 10.0) -> ConsoleRuntime:
        """For tests and benchmarks: what the panes show, once the server serves or the
        console has attached."""
        async with asyncio.timeout(timeout):
            while self.runtime is None:
                if self.failure:
                    raise RuntimeError(self.failure)
                await asyncio.sleep(0.01)
        return self.runtime

    async def wait_until_running(self, timeout: float = 10.0) -> ServerRuntime:
        """For tests and benchmarks: the embedded server once it serves."""
        await self.wait_until_ready(timeout)
        if self.server is None:
            raise RuntimeError("the console is attached to a server in another process")
        return self.server

    # -- first run -----------------------------------------------------------------------------

    @work(group="wizard", exclusive=True, exit_on_error=False)
    async def offer_wizard(self) -> None:
        runtime = self.runtime
        try:
            if runtime is not None and not await runtime.has_users():
                self.action_wizard()
        except RmailError as exc:
            self.notify(str(exc), severity="error")

    def action_wizard(self) -> None:
        if self.runtime is None or not self.runtime.connected:
            self.notify("the server is not running", severity="warning")
            return

        def finished(address: str | None) -> None:
            if address:
                self.post_message(FirstRunDone(address))
        self.push_screen(WizardScreen(self.runtime, self.config_path), finished)

    @on(FirstRunDone)
    def _first_user(self, message: FirstRunDone) -> None:
        self.notify(f"{message.address} can now log in")
        for pane in self.table_panes:
            pane.mark_dirty()
        self.action_show_tab("users")

    # -- live updates --------------------------------------------------------------------------

    def pump(self) -> None:
        """Drain the feed: LogRecords go to the Log pane, the rest mark panes dirty."""
        runtime = self.runtime
        if runtime is None:
            return
        self._watch_connection(runtime)
        feed = runtime.feed
        overflowed = feed.overflowed
        events = feed.drain()
        panes = self.table_panes
        if overflowed:
            for pane in panes:
                pane.mark_dirty()
        records: list[LogRecord] = []
        received: list[MessageReceived] = []
        for event in events:
            if isinstance(event, LogRecord):
                records.append(event)
                continue
            if isinstance(event, MessageReceived):
                received.append(event)
            activity = activity_record(event, self.clock())
            if activity is not None and not isinstance(event, MessageReceived):
                records.append(activity)
            for pane in panes:
                if pane.wants(event):
                    pane.mark_dirty()
        records.extend(received_records(received, self.clock()))
        if records:
            self.pane("log").add(records)  # type: ignore[union-attr]
        self.active_pane_tick()
        # Once a second is enough for uptime and counters, and keeps repaints off the server's time.
        if time.monotonic() - self._last_header >= 1.0:
            self.refresh_header()

    def _watch_connection(self, runtime: ConsoleRuntime) -> None:
        """Attached: say once when the connection drops, and once when it is back."""
        remote = self.remote
        if remote is None or runtime is not remote:
            return
        if not remote.connected and self._generation == remote.generation:
            self._generation = -remote.generation            # told: until the next connection
            self.notify(f"lost the server: {remote.lost_because}; reconnecting…", severity="warning", timeout=10)
            self.refresh_header()
        elif remote.connected and abs(self._generation) != remote.generation:
            self._generation = remote.generation
            self.notify("attached to the server again")
            self.refresh_header()

    def refresh_header(self) -> None:
        """Redraw uptime, counters and listeners now (the pump does it once a second)."""
        self._last_header = time.monotonic()
        runtime = self.runtime
        if runtime is None:
            return
        snap = runtime.snapshot()
        if not runtime.connected:
            hostname = snap.hostname if snap is not None else "?"
            self.header.show_state(hostname, f"not connected: {runtime.problem}; retrying…")
            return
        if snap is None:
            self.header.show_state(runtime.info().hostname, "attached; waiting for the server's status…")
            return
        attached = None
        if runtime.attached:
            info = runtime.info()
            attached = f"attached to pid {info.pid}"
        self.header.show(snap, self.clock(), state="stopping" if self._stopping else "running", attached=attached)
        # The numbers move on their own (queue age, sessions): the Metrics pane reloads when shown.
        self.panes["metrics"].mark_dirty()  # type: ignore[union-attr]

    def active_pane_tick(self) -> None:
        # Hidden panes stay dirty and reload when shown: no store queries for what nobody sees.
        pane = self.panes.get(self.tabs.active)
        if isinstance(pane, Pane):
            pane.tick()

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        pane = self.panes.get(event.pane.id or "")
        if pane is not None:
            pane.focus_main()
        # The pane shows the rows it had at once; catching up (a reload, log lines that came
        # in while hidden) waits until that frame is on screen, so the key feels immediate.
        self.call_after_refresh(self._catch_up, event.pane.id)

    def _catch_up(self, tab: str | None) -> None:
        if self.tabs.active != tab:
            return                       # another key switched on meanwhile; it catches up itself
        log_pane = self.panes["log"]
        if isinstance(log_pane, LogPane):
            log_pane.shown(tab == "log")
        self.active_pane_tick()

    def action_show_tab(self, tab: str) -> None:
        self.tabs.active = tab
        self.panes[tab].focus_main()

    async def action_pane(self, tab: str, action: str) -> None:
        """Run a pane's action (palette commands), showing its tab first."""
        self.action_show_tab(tab)
        await self.pane(tab).run_action(action)


def run_app(config: Config, notice: str | None = None, *, attach: bool | None = None) -> int:
    """``python run.py`` and ``rmail console``: run the console and return the exit status.

    ``attach`` True attaches to the server running on the config's data dir; False embeds a
    server built from ``config``; None (``python run.py``) attaches when a server answers on the
    data dir's admin socket, and embeds one otherwise.
    """
    path = socket_path(config.data_dir)
    if attach is None:
        attach = probe(path)
    app = (ConsoleApp(RemoteRuntime(path, feed_size=FEED_SIZE)) if attach
           else ConsoleApp(lambda: ServerRuntime(config), notice=notice))
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)

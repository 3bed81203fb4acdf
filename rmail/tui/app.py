"""The console: one Textual app that runs the mail server in its own asyncio loop and shows it live.

Lifecycle: a worker starts the ``ServerRuntime`` (or adopts one already running, in tests),
then waits; quitting (q, ctrl+c, the palette) asks it to stop and the app exits once the runtime
has shut down gracefully. A start error (port in use, bad TLS files, a locked data dir) is shown
in a dialog, never as a traceback.

Updates: one bus ``Feed`` is drained by a timer a few times a second. Events only mark panes
dirty; the active pane reloads from the source of truth, rate-limited, so the cost of the UI
does not grow with the event rate and the server never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import TabbedContent, TabPane

from rmail.server.config import Config, ConfigError, default_config_path
from rmail.server.core.events import Event, Feed, LogRecord, MessageReceived
from rmail.server.runtime import BusLogHandler, ServerRuntime

from .commands import ConsoleCommands
from .messages import FirstRunDone, ServerFailed, ServerStarted
from .screens.error import ErrorScreen
from .screens.wizard import WizardScreen
from .widgets.aliases import AliasesPane
from .widgets.connections import ConnectionsPane
from .widgets.header import ServerHeader
from .widgets.keys import KeyBar
from .widgets.log import LogPane
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

RuntimeSource = ServerRuntime | Callable[[], ServerRuntime]

TABS = (("connections", "Connections", ConnectionsPane), ("queue", "Queue", QueuePane),
        ("users", "Users", UsersPane), ("aliases", "Aliases", AliasesPane), ("log", "Log", LogPane))


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
    runtime that is already started only shows it (tests), and leaves stopping it to the caller."""

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
        if isinstance(runtime, ServerRuntime):
            self._factory: Callable[[], ServerRuntime] = lambda: runtime
            self.owned = not runtime.started
        else:
            self._factory = runtime
            self.owned = True
        self.notice = notice
        self.clock = clock
        self.config_path = config_path
        self.first_run = first_run
        self.tick_interval = tick
        self.runtime: ServerRuntime | None = None
        self.failure: str | None = None
        self._feed: Feed | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._log_handler: BusLogHandler | None = None
        self._saved_level = logging.NOTSET
        self._last_header = 0.0

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
        self.header.show_state("", "starting the server…")
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
        try:
            runtime = self._factory()
            self._attach_log(runtime)
            if self.owned:
                await runtime.start()
        except Exception as exc:  # noqa: BLE001 - any start failure is shown, never raised over the screen
            log.error("server failed to start: %s", exc, exc_info=not isinstance(exc, (ConfigError, OSError)))
            self.post_message(ServerFailed(*describe_start_error(exc)))
            return
        self._feed = runtime.bus.feed(maxlen=FEED_SIZE)
        self.runtime = runtime
        self.post_message(ServerStarted())
        if not self.owned:
            return
        try:
            await self._stop.wait()
        finally:
            # Panes stop reading before the store closes.
            self.runtime = None
            runtime.bus.unsubscribe(self._feed)
            await runtime.stop()
            self._detach_log()

    def _attach_log(self, runtime: ServerRuntime) -> None:
        # The root logger catches every library too (aiosmtpd, aiohttp, asyncio); while the
        # console runs, nothing may print to the terminal Textual is drawing on.
        self._log_handler = BusLogHandler(runtime.bus)
        logging.getLogger().addHandler(self._log_handler)
        rmail_logger = logging.getLogger("rmail")
        self._saved_level = rmail_logger.level
        if rmail_logger.getEffectiveLevel() > logging.INFO:
            rmail_logger.setLevel(logging.INFO)

    def _detach_log(self) -> None:
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            logging.getLogger("rmail").setLevel(self._saved_level)
            self._log_handler = None

    def on_unmount(self) -> None:
        self._stop.set()
        if not self.owned and self.runtime is not None and self._feed is not None:
            self.runtime.bus.unsubscribe(self._feed)
        self._detach_log()

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
        hostname = "?"
        self.header.show_state(hostname, f"not running: {message.error}")

        def answered(quit_now: bool | None) -> None:
            if quit_now:
                self.exit(1, return_code=1)
        self.push_screen(ErrorScreen("The server could not start", message.error, message.hint), answered)

    async def action_quit(self) -> None:
        self.shutdown()

    @work(group="shutdown", exclusive=True, exit_on_error=False)
    async def shutdown(self) -> None:
        """Stop the server gracefully (in-flight deliveries finish), then leave."""
        if self._stopping:
            return
        self._stopping = True
        if self.runtime is not None and self.owned:
            self.header.show_state(self.runtime.config.hostname, "stopping: finishing in-flight work…")
        self._stop.set()
        for worker in self.workers:
            if worker.group == "server":
                await worker.wait()
        code = 1 if self.failure else 0
        self.exit(code, return_code=code)

    async def wait_until_running(self, timeout: float = 10.0) -> ServerRuntime:
        """For tests and benchmarks: the runtime once it serves."""
        async with asyncio.timeout(timeout):
            while self.runtime is None:
                if self.failure:
                    raise RuntimeError(self.failure)
                await asyncio.sleep(0.01)
        return self.runtime

    # -- first run -----------------------------------------------------------------------------

    @work(group="wizard", exclusive=True, exit_on_error=False)
    async def offer_wizard(self) -> None:
        runtime = self.runtime
        if runtime is not None and not await runtime.accounts.list_users():
            self.action_wizard()

    def action_wizard(self) -> None:
        if self.runtime is None:
            self.notify("the server is not running", severity="warning")
            return
        config_path = self.config_path or self.runtime.config.source or default_config_path()

        def finished(address: str | None) -> None:
            if address:
                self.post_message(FirstRunDone(address))
        self.push_screen(WizardScreen(self.runtime, config_path), finished)

    @on(FirstRunDone)
    def _first_user(self, message: FirstRunDone) -> None:
        self.notify(f"{message.address} can now log in")
        for pane in self.table_panes:
            pane.mark_dirty()
        self.action_show_tab("users")

    # -- live updates --------------------------------------------------------------------------

    def pump(self) -> None:
        """Drain the feed: LogRecords go to the Log pane, the rest mark panes dirty."""
        runtime, feed = self.runtime, self._feed
        if runtime is None or feed is None:
            return
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

    def refresh_header(self) -> None:
        """Redraw uptime, counters and listeners now (the pump does it once a second)."""
        self._last_header = time.monotonic()
        if self.runtime is not None:
            self.header.show(self.runtime.snapshot(), self.clock(),
                             state="stopping" if self._stopping else "running")

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


def run_app(config: Config, notice: str | None = None) -> int:
    """``python run.py``: run the console with a server built from ``config``; the exit status."""
    app = ConsoleApp(lambda: ServerRuntime(config), notice=notice)
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)

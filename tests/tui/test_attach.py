"""The console attached to a real headless server (``run.py serve`` in a subprocess) through
its admin socket: the panes fill, actions change that server, traffic shows up, leaving leaves
it running, and a dropped connection is said and mended."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import smtplib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from textual.pilot import Pilot

from rmail.server.admin import socket_path
from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp
from rmail.tui.remote import RemoteRuntime, probe
from rmail.tui.screens.confirm import ConfirmScreen
from rmail.tui.screens.form import FormScreen
from rmail.tui.screens.user_add import AddUserScreen
from rmail.tui.widgets.aliases import row_key

from ..helpers.server import dns_toml, free_ports, make_config, port_open, serve_process, stop_process
from .conftest import cells, rows, wait_for
from .test_panes import fill, select

ROOT = Path(__file__).resolve().parents[2]
PORTS = ("smtp", "submission", "smtps", "imap", "imaps", "api")
MESSAGE = (b"From: alice@example.com\r\nTo: alice@example.com, someone@example.net\r\nSubject: hello\r\n\r\n"
           b"Hello\r\n")


@dataclass
class Headless:
    """A ``run.py serve`` process and what a test needs to reach it."""

    proc: subprocess.Popen
    data: Path
    config: Path
    ports: dict[str, int]
    log: Path
    env: dict[str, str]

    @property
    def socket(self) -> Path:
        return socket_path(self.data)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """A run.py sub-command on the same config (it reads the store directly)."""
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=self.env)


def write_config(tmp_path: Path, data: Path, ports: dict[str, int], *, tls: tuple[Path, Path] | None,
                 relay_port: int | None) -> Path:
    lines = ['hostname = "mail.example.com"', f'data_dir = "{data}"', "bcrypt_rounds = 4", "[ports]",
             *(f"{name} = {port}" for name, port in ports.items())]
    if tls is not None:
        lines += ["[tls]", f'cert = "{tls[0]}"', f'key = "{tls[1]}"']
    if relay_port is not None:
        # A smarthost that refuses connections: remote mail stays queued.
        lines += ["[relay]", 'host = "127.0.0.1"', f"port = {relay_port}", 'tls = "none"']
    config = tmp_path / "rmail.toml"
    config.write_text("\n".join(lines) + "\n" + dns_toml())
    return config


@contextlib.contextmanager
def serving(h: Headless, *, tls: bool) -> Iterator[subprocess.Popen]:
    listening = [h.ports[p] for p in PORTS if tls or p not in ("smtps", "imaps")]
    with serve_process([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(h.config)], listening,
                       h.log, cwd=ROOT, env=h.env) as proc:
        # The admin socket opens last, once every other service is up.
        for _ in range(200):
            if probe(h.socket):
                break
            assert proc.poll() is None, h.log.read_text()
            import time
            time.sleep(0.05)
        h.proc = proc
        yield proc


@contextlib.asynccontextmanager
async def headless(tmp_path: Path, *, tls: tuple[Path, Path] | None = None, relay_port: int | None = None,
                   users: bool = True) -> AsyncIterator[Headless]:
    data = tmp_path / "data"
    async with ServerRuntime(make_config(data), auth_delay=0, services=()) as rt:
        if users:
            await rt.accounts.add_user("alice@example.com", "alice-pass")
            await rt.accounts.add_user("bob@example.com", "bob-pass", admin=True)
            await rt.aliases.add("example.com", "sales-.*", "alice")
    ports = dict(zip(PORTS, free_ports(len(PORTS))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
    env["PYTHONUNBUFFERED"] = "1"
    h = Headless(None, data, write_config(tmp_path, data, ports, tls=tls, relay_port=relay_port),  # type: ignore[arg-type]
                 ports, tmp_path / "serve.log", env)
    with serving(h, tls=tls is not None):
        yield h


@contextlib.asynccontextmanager
async def attached(h: Headless, size: tuple[int, int] = (110, 32),
                   first_run: bool = False) -> AsyncIterator[tuple[ConsoleApp, Pilot]]:
    app = ConsoleApp(RemoteRuntime(h.socket, retry=0.2), first_run=first_run, tick=0.05)
    async with app.run_test(size=size) as pilot:
        await app.wait_until_ready()
        yield app, pilot


def header(app: ConsoleApp) -> str:
    return str(app.header.render())


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_panes_fill_and_the_header_shows_the_server(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    async with headless(tmp_path, tls=tls_files) as h, attached(h) as (app, pilot):
        await wait_for(pilot, lambda: "running" in header(app) and f"attached to pid {h.proc.pid}" in header(app))
        text = header(app)
        assert "mail.example.com" in text
        assert f"smtp 127.0.0.1:{h.ports['smtp']} STARTTLS" in text
        assert f"imaps 127.0.0.1:{h.ports['imaps']} TLS" in text
        assert "certificate SHA-256 " in text
        from rmail.server.tls import certificate_fingerprint
        assert certificate_fingerprint(tls_files[0]) in text
        await pilot.press("3")
        await wait_for(pilot, lambda: rows(app, "users") == ["alice@example.com", "bob@example.com"])
        assert cells(app, "users")[1][1] == "admin"
        await pilot.press("4")
        await wait_for(pilot, lambda: rows(app, "aliases") == [row_key("example.com", "sales-.*")])
        await pilot.press("6")
        await wait_for(pilot, lambda: "received" in rows(app, "metrics"))
        assert dict((r[0], r[1]) for r in cells(app, "metrics"))["Messages received"].startswith("api 0")
        await pilot.press("5")

        # The server's own log reaches the attached Log pane: here, a failed login's line.
        def bad_login() -> None:
            with smtplib.SMTP("127.0.0.1", h.ports["submission"], "client.example.org", 10) as smtp:
                smtp.starttls(context=__import__("ssl").create_default_context(cafile=str(tls_files[0])))
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    smtp.login("alice@example.com", "wrong")
        await in_thread(bad_login)
        await wait_for(pilot, lambda: any('auth failed: protocol=submission' in r.message
                                          for r in app.pane("log").records))
        await wait_for(pilot, lambda: "auth failures 1" in header(app) or "auth failures 2" in header(app))


async def test_a_user_added_in_the_attached_console_can_log_in(tmp_path: Path) -> None:
    async with headless(tmp_path) as h, attached(h) as (app, pilot):
        await pilot.press("3")
        await wait_for(pilot, lambda: "alice@example.com" in rows(app, "users"))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddUserScreen))
        # A refusal from the other process shows inline, as with the server inside.
        await fill(pilot, {"address": "alice@example.com", "password": "x", "password2": "x"})
        await pilot.click("#submit")
        await wait_for(pilot, lambda: "already exists" in str(app.screen.query_one(".error").render()))
        await fill(pilot, {"address": "carol@example.com", "password": "carol-pass", "password2": "carol-pass"})
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        await wait_for(pilot, lambda: "carol@example.com" in rows(app, "users"))
        assert app.notices.count(("added user carol@example.com", "information")) == 1

        def imap_login(user: str, password: str) -> str:
            imap = imaplib.IMAP4("127.0.0.1", h.ports["imap"], timeout=10)
            try:
                return imap.login(user, password)[0]
            finally:
                imap.logout()
        assert await in_thread(imap_login, "carol@example.com", "carol-pass") == "OK"

        # Change the password, then remove the user: both reach the server.
        await select(app, pilot, "users", "carol@example.com")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await fill(pilot, {"password": "new-pass", "password2": "new-pass"})
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        assert await in_thread(imap_login, "carol@example.com", "new-pass") == "OK"
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")                              # the safe default: Keep
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert "carol@example.com" in h.run("user", "list").stdout
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "carol@example.com" not in rows(app, "users"))
        assert "carol@example.com" not in h.run("user", "list").stdout
        with pytest.raises(imaplib.IMAP4.error):
            await in_thread(imap_login, "carol@example.com", "new-pass")


async def test_alias_rules_change_the_servers_routing(tmp_path: Path) -> None:
    async with headless(tmp_path) as h, attached(h) as (app, pilot):
        await pilot.press("4")
        await wait_for(pilot, lambda: rows(app, "aliases"))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await fill(pilot, {"pattern": ".*", "target": "bob"})
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(rows(app, "aliases")) == 2)
        await select(app, pilot, "aliases", row_key("example.com", ".*"))
        await pilot.press("shift+up")
        await wait_for(pilot, lambda: rows(app, "aliases")[0] == row_key("example.com", ".*"))
        listed = h.run("alias", "list", "example.com").stdout
        assert listed.index(".*") < listed.index("sales-.*")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: len(rows(app, "aliases")) == 1)
        assert ".*" not in h.run("alias", "list", "example.com").stdout.replace("sales-.*", "")


async def test_smtp_traffic_shows_in_connections_queue_header_and_metrics(tmp_path: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    async with headless(tmp_path, relay_port=dead) as h, attached(h) as (app, pilot):
        await wait_for(pilot, lambda: "received 0" in header(app))
        # Submission (AUTH in clear: no TLS configured), one local and one remote recipient.
        smtp = await in_thread(smtplib.SMTP, "127.0.0.1", h.ports["submission"], "client.example.org", 10)
        try:
            await in_thread(smtp.login, "alice@example.com", "alice-pass")
            await wait_for(pilot, lambda: ["submission", "127.0.0.1", "alice@example.com"] in
                           [r[1:4] for r in cells(app, "connections")])
            refused = await in_thread(smtp.sendmail, "alice@example.com", ["alice@example.com", "someone@example.net"],
                                      MESSAGE)
            assert refused == {}
        finally:
            await in_thread(smtp.quit)
        await wait_for(pilot, lambda: not rows(app, "connections"))
        await wait_for(pilot, lambda: "received 1" in header(app) and "delivered 1" in header(app)
                       and "queued 1" in header(app))
        await pilot.press("2")
        await wait_for(pilot, lambda: len(rows(app, "queue")) == 1, timeout=10)
        row = cells(app, "queue")[0]
        assert row[1:3] == ["alice@example.com", "someone@example.net"]
        entry = rows(app, "queue")[0]
        assert f"{entry}\talice@example.com\tsomeone@example.net" in h.run("queue", "list").stdout

        await pilot.press("6")
        await wait_for(pilot, lambda: "submission 1" in dict((r[0], r[1]) for r in cells(app, "metrics"))
                       .get("Messages received", ""))
        metrics = dict((r[0], r[1]) for r in cells(app, "metrics"))
        assert metrics["Delivered locally"].startswith("1 ")
        assert metrics["Queued for remote"].startswith("1 ")
        await wait_for(pilot, lambda: dict((r[0], r[1]) for r in cells(app, "metrics"))["Outbound queue"]
                       .startswith("1 entry, oldest"))

        # Retry and delete act on the server's queue.
        await pilot.press("2")
        await wait_for(pilot, lambda: int(cells(app, "queue")[0][4]) >= 1, timeout=15)
        tries = int(cells(app, "queue")[0][4])
        app.pane("queue").focus_main()
        await pilot.press("r")
        await wait_for(pilot, lambda: int(cells(app, "queue")[0][4]) > tries, timeout=15)
        await pilot.press("v")
        await wait_for(pilot, lambda: "Subject: hello" in str(app.screen.query_one("#header").render())
                       if app.screen.query("#header") else False)
        await pilot.press("escape")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not rows(app, "queue"))
        assert "the outbound queue is empty" in h.run("queue", "list").stdout


async def test_the_first_run_wizard_works_attached(tmp_path: Path) -> None:
    """An empty server: the wizard creates the admin there and the server writes the
    certificate into its own data dir, the config being the server's."""
    from .test_wizard import run_wizard
    async with headless(tmp_path, users=False) as h, attached(h, first_run=True) as (app, pilot):
        wizard = await run_wizard(pilot, "postmaster@example.org", "first-pass")
        summary = str(wizard.query_one("#summary-text").render())
        assert f"written to {h.data / 'keys'}" in summary
        assert f"Add these lines to {h.config}" in summary and "systemctl restart rmail" in summary
        assert f"imap       127.0.0.1:{h.ports['imap']}" in summary
        assert (h.data / "keys" / "cert.pem").exists()
        assert "postmaster@example.org" in h.run("user", "list").stdout
        assert "tls" not in h.config.read_text()          # never edits the user's file


async def test_leaving_the_console_leaves_the_server_running(tmp_path: Path) -> None:
    async with headless(tmp_path) as h:
        async with attached(h) as (app, pilot):
            await wait_for(pilot, lambda: "running" in header(app))
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running)
        assert app.return_code == 0
        assert h.proc.poll() is None
        assert port_open(h.ports["smtp"]) and probe(h.socket)
        # And the next console attaches just the same.
        async with attached(h) as (again, pilot):
            await pilot.press("3")
            await wait_for(pilot, lambda: "alice@example.com" in rows(again, "users"))


async def test_a_dropped_connection_is_said_and_mended(tmp_path: Path) -> None:
    async with headless(tmp_path) as h, attached(h) as (app, pilot):
        await wait_for(pilot, lambda: f"attached to pid {h.proc.pid}" in header(app))
        first_pid = h.proc.pid
        await asyncio.to_thread(stop_process, h.proc)
        await wait_for(pilot, lambda: "not connected" in header(app), timeout=10)
        assert "retrying" in header(app)
        # Said once, with the reason the server gave.
        lost = [text for text, severity in app.notices if text.startswith("lost the server")]
        assert lost == ["lost the server: the server said goodbye: the server is shutting down; reconnecting…"]
        await wait_for(pilot, lambda: f"no rmail server is running on {h.data}" in header(app))
        # Panes keep what they showed; actions say why they cannot run.
        await pilot.press("3")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddUserScreen))
        await fill(pilot, {"address": "dave@example.com", "password": "x", "password2": "x"})
        await pilot.press("enter")
        await wait_for(pilot, lambda: "not connected to the server" in str(app.screen.query_one(".error").render()))
        await pilot.press("escape")
        # The server comes back: the console attaches again by itself.
        with serving(h, tls=False):
            assert h.proc.pid != first_pid
            await wait_for(pilot, lambda: f"attached to pid {h.proc.pid}" in header(app), timeout=15)
            assert ("attached to the server again", "information") in app.notices
            await wait_for(pilot, lambda: "alice@example.com" in rows(app, "users"))


def test_rmail_console_without_a_server_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMAIL_")}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "console", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"rmail: no rmail server is running on {tmp_path / 'data'}")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_a_connection_is_closed_from_the_attached_console(tmp_path: Path) -> None:
    async with headless(tmp_path) as h, attached(h) as (app, pilot):
        smtp = await in_thread(smtplib.SMTP, "127.0.0.1", h.ports["smtp"], "client.example.org", 10)
        try:
            await wait_for(pilot, lambda: len(rows(app, "connections")) == 1)
            [key] = rows(app, "connections")
            app.pane("connections").focus_main()
            await pilot.press("x")
            await wait_for(pilot, lambda: not rows(app, "connections"))
            assert (f"connection {key}: closing", "information") in app.notices

            # The server closed it: the client's next command finds the connection gone.
            def noop() -> int:
                try:
                    return smtp.noop()[0]
                except (smtplib.SMTPServerDisconnected, ConnectionError):
                    return 0
            assert await in_thread(noop) in (0, 421)
        finally:
            smtp.close()

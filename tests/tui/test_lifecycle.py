"""The app starts the server in its own loop, shows it, and stops it gracefully on quit; a start
error is shown in a dialog."""

from __future__ import annotations

import os
from pathlib import Path

from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp
from rmail.tui.screens.attach import AttachScreen
from rmail.tui.screens.error import ErrorScreen

from ..helpers.server import make_config
from .conftest import has_service, rows, wait_for


async def test_starts_shows_listeners_and_stops_on_q(tmp_path: Path) -> None:
    built: list[ServerRuntime] = []

    def factory() -> ServerRuntime:
        built.append(ServerRuntime(make_config(tmp_path / "data"), auth_delay=0))
        return built[0]

    app = ConsoleApp(factory, first_run=False, tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        runtime = await app.wait_until_running()
        await wait_for(pilot, lambda: app.header.state == "running")
        header = str(app.header.render())
        assert "mail.example.com" in header
        for listener in runtime.listeners:
            assert f"{listener.protocol} {listener.host}:{listener.port}" in header
        if has_service("smtp"):
            assert "smtp" in header
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, timeout=15)
    assert app.return_code == 0
    assert app.runtime is None
    # The data dir lock is released: another server can start on it (graceful stop ran).
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()):
        pass


async def test_ctrl_c_quits_gracefully(tmp_path: Path) -> None:
    app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()),
                     first_run=False, tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_running()
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.is_running, timeout=15)
    assert app.return_code == 0


async def test_data_dir_in_use_offers_to_attach(tmp_path: Path) -> None:
    """Another server holds the data dir: the dialog offers to attach (the focused default);
    Quit leaves with status 1."""
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()):
        app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data"), auth_delay=0),
                         first_run=False, tick=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen) and app.screen.query("#attach"))
            assert "another rmail server is already running" in str(app.failure)
            assert "not running" in str(app.header.render())
            assert app.screen.focused is app.screen.query_one("#attach")
            await pilot.click("#quit")
            await wait_for(pilot, lambda: not app.is_running)
        assert app.return_code == 1


async def test_enter_in_the_dialog_attaches_to_the_running_server(tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=("rmail.server.admin",)) as rt:
        await rt.accounts.add_user("alice@example.com", "pw")
        app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data"), auth_delay=0),
                         first_run=False, tick=0.05)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen) and app.screen.query("#attach"))
            await pilot.press("enter")
            runtime = await app.wait_until_ready()
            assert runtime.attached and app.server is None
            await pilot.press("3")
            await wait_for(pilot, lambda: "alice@example.com" in rows(app, "users"))
            await wait_for(pilot, lambda: f"attached to pid {os.getpid()}" in str(app.header.render()))
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running)
        assert app.return_code == 0
        # Leaving the console left the server serving.
        assert not rt.stopping and await rt.accounts.find_user("alice@example.com") is not None


async def test_bad_tls_files_are_shown(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data", tls=(cert, key)), auth_delay=0),
                     first_run=False, tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen) and app.screen.query("#quit"))
        assert "tls.cert" in str(app.failure)
        # "Keep the console open": the app stays up without a server and can still quit.
        await pilot.click("#close")
        await wait_for(pilot, lambda: not isinstance(app.screen, ErrorScreen))
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 1


async def test_port_in_use_is_shown(tmp_path: Path) -> None:
    import socket
    if not has_service("smtp"):
        import pytest
        pytest.skip("rmail.server.smtp is not built yet")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data", ports={"smtp": port}), auth_delay=0),
                         first_run=False, tick=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen) and app.screen.query("#quit"))
            assert "cannot start" in str(app.failure)
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.is_running)


async def test_sighup_reloads_the_embedded_server_and_leaves_the_console_running(tmp_path: Path) -> None:
    """As for ``serve``: SIGHUP re-reads the config file and applies what can change live; the
    console (whose process would otherwise end) says so and goes on."""
    import signal

    from rmail.server.config import load_config

    from ..helpers.server import dns_toml

    path = tmp_path / "rmail.toml"
    base = (f'data_dir = "{tmp_path / "data"}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
            "[ports]\nsmtp = 0\nsubmission = 0\nsmtps = 0\nimap = 0\nimaps = 0\napi = 0\n" + dns_toml())
    path.write_text(base + "[limits]\nrecipients = 5\n")
    app = ConsoleApp(lambda: ServerRuntime(load_config(str(path)), auth_delay=0, services=()),
                     first_run=False, tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        runtime = await app.wait_until_running()
        assert runtime.config.limits.recipients == 5
        path.write_text(base + "[limits]\nrecipients = 2\n")
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(pilot, lambda: runtime.config.limits.recipients == 2, timeout=15)
        assert app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, timeout=15)

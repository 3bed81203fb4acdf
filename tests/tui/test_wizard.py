"""First run: on an empty data dir the wizard creates the first admin and a TLS certificate."""

from __future__ import annotations

import stat
from pathlib import Path

from textual.pilot import Pilot

from rmail.server.config import load_config
from rmail.server.runtime import ServerRuntime
from rmail.tui.app import ConsoleApp
from rmail.tui.screens.wizard import WizardScreen

from ..helpers.server import make_config
from .conftest import wait_for


async def run_wizard(pilot: Pilot, address: str, password: str) -> WizardScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, WizardScreen) and app.screen.query("#address"))
    wizard = app.screen
    for input_id, value in (("address", address), ("password", password), ("password2", password)):
        wizard.query_one(f"#{input_id}").value = value  # type: ignore[attr-defined]
    wizard.query_one("#password2").focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: wizard.query_one("#summary").display, timeout=10)
    return wizard  # type: ignore[return-value]


async def test_wizard_creates_admin_certificate_and_config(tmp_path: Path) -> None:
    config_path = tmp_path / "config" / "rmail.toml"
    app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data"), auth_delay=0),
                     config_path=config_path, tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        runtime = await app.wait_until_running()
        wizard = await run_wizard(pilot, "postmaster@example.org", "first-pass")
        summary = str(wizard.query_one("#summary-text").render())
        assert "python -m rmail.client --user postmaster@example.org" in summary
        for listener in runtime.listeners:
            assert f"{listener.host}:{listener.port}" in summary
        account = await runtime.accounts.authenticate("postmaster@example.org", "first-pass")
        assert account.admin
        assert [d for d, _ in await runtime.accounts.list_domains()] == ["example.org"]
        await pilot.click("#done")
        await wait_for(pilot, lambda: not isinstance(app.screen, WizardScreen))
        assert app.tabs.active == "users"
    keys = tmp_path / "data" / "keys"
    assert stat.S_IMODE((keys / "key.pem").stat().st_mode) == 0o600
    # The written config is valid and turns TLS on at the next start.
    config = load_config(config_path, {}, is_root=True)
    assert config.tls.cert == keys / "cert.pem" and config.tls.key == keys / "key.pem"


async def test_wizard_never_overwrites_an_existing_config(tmp_path: Path) -> None:
    config_path = tmp_path / "rmail.toml"
    config_path.write_text(f'data_dir = "{tmp_path / "data"}"\nbcrypt_rounds = 4\n')
    config = load_config(config_path, {}, is_root=True)
    app = ConsoleApp(lambda: ServerRuntime(config, auth_delay=0, services=()), tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_running()
        wizard = await run_wizard(pilot, "admin@example.com", "pw")
        summary = str(wizard.query_one("#summary-text").render())
        assert f"Add these lines to {config_path}" in summary
        assert "[tls]" in summary
    assert "tls" not in config_path.read_text()


async def test_no_wizard_when_users_exist(tmp_path: Path) -> None:
    async with ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()) as rt:
        await rt.accounts.add_user("alice@example.com", "pw")
    app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()), tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_running()
        await wait_for(pilot, lambda: app.pane("users").loads or app.pane("connections").loads)
        await pilot.pause(0.3)
        assert not isinstance(app.screen, WizardScreen)


async def test_wizard_can_be_skipped(tmp_path: Path) -> None:
    app = ConsoleApp(lambda: ServerRuntime(make_config(tmp_path / "data"), auth_delay=0, services=()), tick=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        runtime = await app.wait_until_running()
        await wait_for(pilot, lambda: isinstance(app.screen, WizardScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, WizardScreen))
        assert await runtime.accounts.list_users() == []

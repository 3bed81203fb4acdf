"""The console shows a domain's DNS records: from the palette, and with n on the Aliases pane."""

from __future__ import annotations

from textual.widgets import Static

from rmail.tui.screens.dns_records import DnsRecordsScreen

from .conftest import wait_for


def _text(app) -> str:  # noqa: ANN001
    return str(app.screen.query_one("#records", Static).render())


async def test_palette_and_key_show_the_records(console) -> None:  # noqa: ANN001
    app, pilot = console
    await pilot.press("ctrl+p")
    await pilot.pause(0.2)
    await pilot.press(*"dns records")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, DnsRecordsScreen))
    await wait_for(pilot, lambda: "_dmarc.example.com." in _text(app))
    text = _text(app)
    assert "example.com.\t3600\tIN\tMX\t10 mail.example.com." in text and "._domainkey.example.com." in text
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, DnsRecordsScreen))
    assert app.query_one("TabbedContent").active == "aliases"  # type: ignore[attr-defined]
    app.pane("aliases").focus_main()
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, DnsRecordsScreen))
    await wait_for(pilot, lambda: "_mta-sts.example.com." in _text(app))

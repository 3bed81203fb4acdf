"""Pure helpers of the console: cells are data, never markup; sizes, times, protocols."""

from __future__ import annotations

import pytest

from rmail.tui.format import MAX_CELL, cell, duration, protocol_of, relative, size


@pytest.mark.parametrize(("logger", "protocol"), [
    ("rmail.smtp", "smtp"), ("rmail.smtp.session", "smtp"), ("rmail.submission", "smtp"),
    ("mail.log", "smtp"), ("rmail.queue", "smtp"), ("rmail.imap.connection", "imap"), ("rmail.imaps", "imap"),
    ("rmail.http.app", "api"), ("aiohttp.access", "api"), ("rmail", "core"), ("rmail.store", "core"),
    ("asyncio", "core"),
], ids=lambda v: v)
def test_protocol_of(logger: str, protocol: str) -> None:
    assert protocol_of(logger) == protocol


def test_cell_is_plain_text_with_visible_control_characters() -> None:
    text = cell("[bold red]x[/]\x1b[2J\r\n")
    assert text.plain.startswith("[bold red]x[/]")
    assert "\x1b" not in text.plain and "\r" not in text.plain and "\n" not in text.plain
    assert len(cell("a" * 1000).plain) == MAX_CELL


@pytest.mark.parametrize(("n", "shown"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                          (5 * 1024 * 1024, "5.0 MiB"), (3 * 1024 ** 4, "3072.0 GiB")])
def test_size(n: int, shown: str) -> None:
    assert size(n) == shown


def test_duration_and_relative() -> None:
    assert duration(3723) == "01:02:03"
    assert duration(2 * 86400 + 5) == "2d 00:00:05"
    assert duration(-5) == "00:00:00"
    assert relative(1000, 1000) == "now"
    assert relative(1090, 1000) == "in 1m"
    assert relative(1000, 1030) == "30s ago"
    assert relative(1000 + 3 * 86400, 1000) == "in 3d"

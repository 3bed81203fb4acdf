"""The certificate fingerprint rmail announces (start-up log, console header) is the one a
client sees on the wire, in the form the mail client's trust dialog shows."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from pathlib import Path

import pytest

from rmail.client.tlstrust import pretty
from rmail.server.runtime import ServerRuntime
from rmail.tui.widgets.header import ServerHeader

from .helpers.server import make_config


async def test_fingerprint_is_logged_and_matches_the_wire(tmp_path: Path, tls_files: tuple[Path, Path],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rmail")
    async with ServerRuntime(make_config(tmp_path / "data", tls=tls_files), auth_delay=0) as rt:
        ctx = ssl.create_default_context(cafile=str(tls_files[0]))
        reader, writer = await asyncio.open_connection("127.0.0.1", rt.port("imaps"), ssl=ctx,
                                                       server_hostname="localhost")
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        assert der is not None
        expected = pretty(hashlib.sha256(der).hexdigest())
        assert rt.tls_fingerprint == expected == rt.snapshot().tls_fingerprint
        assert any(expected in r.getMessage() and "fingerprint" in r.getMessage() for r in caplog.records)


async def test_no_tls_no_fingerprint(runtime: ServerRuntime) -> None:
    assert runtime.snapshot().tls_fingerprint is None


def test_header_shows_the_fingerprint() -> None:
    from rmail.server.runtime import Counters, Snapshot
    snap = Snapshot("mail.example.com", 0.0, (), Counters(), 0, 0, None, "AB:CD")
    header = ServerHeader()
    captured = []
    header.update = lambda text, layout=True: captured.append(text)  # type: ignore[method-assign]
    header.show(snap, 10.0)
    assert "certificate SHA-256 AB:CD" in captured[-1].plain

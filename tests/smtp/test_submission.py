"""Submission (587) and SMTPS (465): AUTH rules, TLS advertising, sender ownership, relaying."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl

import aiosmtplib
import pytest

from rmail.server.core.events import AuthFailed
from rmail.server.runtime import ServerRuntime

from .conftest import PASSWORD, inbox, strip_received

HELLO = "From: alice@example.com\r\nTo: bob@example.com\r\nSubject: Hello\r\n\r\nBody\r\n"


# -- the SPEC's two examples, host and port changed ---------------------------------------------

async def test_spec_starttls_example(tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    port = tls_runtime.port("submission")

    def example() -> None:
        server = smtplib.SMTP("localhost", port)
        server.ehlo("client.example.com")
        server.starttls(context=client_tls_context)
        server.ehlo("client.example.com")
        server.login("alice@example.com", PASSWORD)
        server.sendmail("alice@example.com", ["bob@example.com"], HELLO)
        server.quit()
    await asyncio.to_thread(example)
    [stored] = await inbox(tls_runtime, "bob@example.com")
    assert strip_received(stored) == HELLO.encode()
    assert b"with ESMTPSA id" in stored and b"(using TLSv1." in stored
    assert b"(authenticated as alice@example.com)" in stored


async def test_spec_implicit_tls_example(tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    port = tls_runtime.port("smtps")

    def example() -> None:
        ctx = client_tls_context
        with smtplib.SMTP_SSL("localhost", port, context=ctx) as server:
            server.login("alice@example.com", PASSWORD)
            server.sendmail("alice@example.com", ["bob@example.com"], HELLO)
    await asyncio.to_thread(example)
    [stored] = await inbox(tls_runtime, "bob@example.com")
    assert strip_received(stored) == HELLO.encode()
    assert b"with ESMTPSA id" in stored


# -- EHLO behaviour (SPEC Part 1) ---------------------------------------------------------------

async def test_tls_configured_cleartext_ehlo_has_starttls_not_auth(
        tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    for protocol in ("submission", "smtp"):
        client = aiosmtplib.SMTP(hostname="localhost", port=tls_runtime.port(protocol), start_tls=False,
                                 tls_context=client_tls_context, local_hostname="client.example.com")
        async with client:
            await client.ehlo()
            assert "starttls" in client.esmtp_extensions and "auth" not in client.esmtp_extensions
            code, text = await client.execute_command(b"AUTH", b"PLAIN",
                                                      base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()))
            assert code == 538 and text.startswith("5.7.11")
            await client.starttls()
            await client.ehlo()
            assert "starttls" not in client.esmtp_extensions
            assert set(client.esmtp_extensions["auth"].split()) == {"PLAIN", "LOGIN"}
            await client.login("alice@example.com", PASSWORD)


async def test_smtps_advertises_auth_at_once(tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    async with aiosmtplib.SMTP(hostname="localhost", port=tls_runtime.port("smtps"), use_tls=True,
                               tls_context=client_tls_context) as client:
        await client.ehlo()
        assert "auth" in client.esmtp_extensions and "starttls" not in client.esmtp_extensions


async def test_no_tls_configured_auth_always_and_no_465(runtime: ServerRuntime) -> None:
    assert "smtps" not in {listener.protocol for listener in runtime.listeners}
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission"), start_tls=False) as client:
        await client.ehlo()
        assert "auth" in client.esmtp_extensions and "starttls" not in client.esmtp_extensions
        await client.login("alice@example.com", PASSWORD)


# -- AUTH ---------------------------------------------------------------------------------------

async def test_auth_required_before_mail(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission")) as client:
        await client.ehlo()
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
            await client.mail("alice@example.com")
        assert err.value.code == 530 and err.value.message.startswith("5.7.0")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_mechanisms(runtime: ServerRuntime, mechanism: str) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission")) as client:
        await client.ehlo()
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as err:
            await method("alice@example.com", "wrong")
        assert err.value.code == 535 and err.value.message.startswith("5.7.8")
        response = await method("alice@example.com", PASSWORD)
        assert response.code == 235
        await client.sendmail("alice@example.com", ["bob@example.com"], HELLO)
    assert len(await inbox(runtime, "bob@example.com")) == 1


async def test_auth_plain_with_challenge_and_other_authzid(raw, runtime: ServerRuntime) -> None:
    s = await raw(runtime.port("submission"))
    await s.cmd("EHLO client.example.com")
    assert (await s.cmd("AUTH PLAIN"))[0] == "334 "
    token = base64.b64encode(f"bob@example.com\0alice@example.com\0{PASSWORD}".encode()).decode()
    assert (await s.cmd(token))[0].startswith("535 5.7.8")   # acting as another user: refused
    assert (await s.cmd("AUTH PLAIN"))[0] == "334 "
    token = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
    assert (await s.cmd(token))[0].startswith("235 2.7.0")
    assert (await s.cmd("AUTH PLAIN"))[0].startswith("503")   # already authenticated


async def test_auth_failures_publish_events_and_end_session(raw, runtime: ServerRuntime) -> None:
    feed = runtime.bus.feed(lambda e: isinstance(e, AuthFailed))
    s = await raw(runtime.port("submission"))
    await s.cmd("EHLO client.example.com")
    bad = base64.b64encode(b"\0alice@example.com\0nope").decode()
    assert (await s.cmd(f"AUTH PLAIN {bad}"))[0].startswith("535")
    assert (await s.cmd(f"AUTH PLAIN {bad}"))[0].startswith("535")
    assert (await s.cmd(f"AUTH PLAIN {bad}"))[0].startswith("535")
    assert (await s.reply())[0].startswith("421 4.7.0")
    assert await s.closed()
    events = feed.drain()
    assert len(events) == 3 and events[0].protocol == "submission" and events[0].username == "alice@example.com"


async def test_auth_throttle_locks_out_an_address(tmp_path) -> None:
    from tests.helpers.server import make_config
    cfg = make_config(tmp_path / "d", limits={"auth_failures": 2, "auth_lockout_seconds": 60})
    async with ServerRuntime(cfg, auth_delay=0.01) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        bad = base64.b64encode(b"\0alice@example.com\0nope").decode()
        good = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
        from .conftest import RawSession
        s = await RawSession.open(rt.port("submission"))
        await s.cmd("EHLO client.example.com")
        assert (await s.cmd(f"AUTH PLAIN {bad}"))[0].startswith("535")
        assert (await s.cmd(f"AUTH PLAIN {bad}"))[0].startswith("535")
        # Locked out now: even the right password is not checked.
        assert (await s.cmd(f"AUTH PLAIN {good}"))[0].startswith("454 4.7.0")
        await s.close()
        assert rt.throttle.locked_for("127.0.0.1") > 0


# -- sender ownership and relaying --------------------------------------------------------------

async def test_sender_must_be_owned(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "alice-.*", "alice")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission")) as client:
        await client.ehlo()
        await client.login("alice@example.com", PASSWORD)
        for spoofed in ("bob@example.com", "ceo@elsewhere.org"):
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
                await client.mail(spoofed)
            assert err.value.code == 553 and err.value.message.startswith("5.7.1")
        await client.sendmail("Alice-Shop@example.com", ["bob@example.com"], HELLO)   # an alias of alice
        await client.sendmail("ALICE@EXAMPLE.COM", ["bob@example.com"], HELLO)
    assert len(await inbox(runtime, "bob@example.com")) == 2


async def test_authenticated_remote_recipient_is_queued(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission")) as client:
        await client.ehlo()
        await client.login("alice@example.com", PASSWORD)
        await client.sendmail("alice@example.com", ["bob@example.com", "dave@elsewhere.example.org"], HELLO)
    entries = await runtime.queue.list()
    assert [(e.sender, e.recipient) for e in entries] == [("alice@example.com", "dave@elsewhere.example.org")]
    queued = await runtime.store.read_message(entries[0].blob_id)
    assert strip_received(queued) == HELLO.encode()
    assert len(await inbox(runtime, "bob@example.com")) == 1


async def test_port_25_relays_only_after_starttls_and_auth(
        tls_runtime: ServerRuntime, client_tls_context: ssl.SSLContext) -> None:
    client = aiosmtplib.SMTP(hostname="localhost", port=tls_runtime.port("smtp"), start_tls=False,
                             tls_context=client_tls_context)
    async with client:
        await client.ehlo()
        await client.mail("alice@example.com")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused):
            await client.rcpt("dave@elsewhere.example.org")
        await client.rset()
        await client.starttls()
        await client.login("alice@example.com", PASSWORD)
        await client.sendmail("alice@example.com", ["dave@elsewhere.example.org"], HELLO)
    assert [e.recipient for e in await tls_runtime.queue.list()] == ["dave@elsewhere.example.org"]

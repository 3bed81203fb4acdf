"""Quotas enforced through real sockets: SMTP 452 4.2.2, IMAP NO [OVERQUOTA], REST 507.

SMTP refuses a full mailbox per recipient at RCPT TO (with the declared SIZE when given). At
the end of DATA one reply answers for every recipient, so the message is refused only when
every recipient's mailbox is full; when some can take it, it goes to all and the full mailbox
goes over by this one message (the next RCPT TO for it is then refused).
"""

from __future__ import annotations

import base64

import aiohttp

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD
from ..imap.conftest import RawClient
from ..smtp.conftest import RawSession, inbox


def message(size: int, subject: str = "quota") -> bytes:
    """A message of exactly `size` bytes, in lines of 78 characters."""
    head = f"From: carol@example.net\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\n".encode()
    body = bytearray()
    while len(head) + len(body) < size:
        body += (b"x" * 78 + b"\r\n")[:size - len(head) - len(body)]
    data = head + bytes(body[:-2]) + b"\r\n"
    assert len(data) == size
    return data


async def set_quota(rt: ServerRuntime, address: str, limit: int | None) -> None:
    await rt.quotas.set(await rt.accounts.get_user(address), limit)


async def used(rt: ServerRuntime, address: str) -> int:
    return (await rt.quotas.state((await rt.accounts.get_user(address)).id)).used


async def fill(rt: ServerRuntime, address: str, size: int) -> None:
    account = await rt.accounts.get_user(address)
    await rt.store.append((await rt.store.get_mailbox(account.id, "INBOX")).id, message(size, "filler"))


async def data(session: RawSession, body: bytes) -> list[str]:
    assert (await session.cmd("DATA"))[0].startswith("354")
    await session.send(body + b".\r\n")
    return await session.reply()


# -- SMTP ------------------------------------------------------------------------------------------

async def test_smtp_rcpt_refuses_a_full_mailbox_and_a_declared_size_too_big(runtime: ServerRuntime) -> None:
    await set_quota(runtime, "bob@example.com", 10_000)
    s = await RawSession.open(runtime.port("smtp"))
    await s.cmd("EHLO client.example.net")
    assert (await s.cmd("MAIL FROM:<carol@example.net> SIZE=12000"))[0].startswith("250 ")
    assert await s.cmd("RCPT TO:<bob@example.com>") == ["452 4.2.2 Mailbox full: bob@example.com"]
    assert (await s.cmd("RCPT TO:<alice@example.com>"))[0].startswith("250 ")
    assert (await data(s, message(12_000)))[0].startswith("250 ")
    await s.cmd("RSET")
    # No SIZE: RCPT passes while there is room; the end of DATA refuses what does not fit.
    assert (await s.cmd("MAIL FROM:<carol@example.net>"))[0].startswith("250 ")
    assert (await s.cmd("RCPT TO:<bob@example.com>"))[0].startswith("250 ")
    assert await data(s, message(12_000)) == ["452 4.2.2 mailbox full: bob@example.com"]
    assert await inbox(runtime, "bob@example.com") == [] and await used(runtime, "bob@example.com") == 0
    # Full: refused at RCPT, even for an empty message.
    await fill(runtime, "bob@example.com", 10_000)
    assert (await s.cmd("MAIL FROM:<carol@example.net>"))[0].startswith("250 ")
    assert await s.cmd("RCPT TO:<bob@example.com>") == ["452 4.2.2 Mailbox full: bob@example.com"]
    assert (await s.cmd("QUIT"))[0].startswith("221 ")
    await s.close()


async def test_smtp_data_shared_with_a_recipient_with_room_goes_to_both(runtime: ServerRuntime) -> None:
    await set_quota(runtime, "bob@example.com", 10_000)
    await fill(runtime, "bob@example.com", 9_000)
    s = await RawSession.open(runtime.port("smtp"))
    await s.cmd("EHLO client.example.net")
    await s.cmd("MAIL FROM:<carol@example.net>")
    assert (await s.cmd("RCPT TO:<bob@example.com>"))[0].startswith("250 ")
    assert (await s.cmd("RCPT TO:<alice@example.com>"))[0].startswith("250 ")
    assert (await data(s, message(5_000, "shared")))[0].startswith("250 ")
    assert b"Subject: shared" in (await inbox(runtime, "bob@example.com"))[-1]
    assert b"Subject: shared" in (await inbox(runtime, "alice@example.com"))[-1]
    assert await used(runtime, "bob@example.com") > 10_000
    await s.cmd("MAIL FROM:<carol@example.net>")
    assert await s.cmd("RCPT TO:<bob@example.com>") == ["452 4.2.2 Mailbox full: bob@example.com"]
    await s.close()


async def test_smtp_names_an_alias_as_written_never_its_target(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "sales-.*", "bob")
    await set_quota(runtime, "bob@example.com", 5_000)
    s = await RawSession.open(runtime.port("smtp"))
    await s.cmd("EHLO client.example.net")
    await s.cmd("MAIL FROM:<carol@example.net>")
    assert (await s.cmd("RCPT TO:<sales-eu@example.com>"))[0].startswith("250 ")
    assert await data(s, message(6_000)) == ["452 4.2.2 mailbox full: sales-eu@example.com"]
    await fill(runtime, "bob@example.com", 5_000)
    await s.cmd("MAIL FROM:<carol@example.net>")
    assert await s.cmd("RCPT TO:<sales-eu@example.com>") == ["452 4.2.2 Mailbox full: sales-eu@example.com"]
    await s.close()


async def test_submission_to_a_full_local_mailbox(runtime: ServerRuntime) -> None:
    await set_quota(runtime, "bob@example.com", 1_000)
    await fill(runtime, "bob@example.com", 1_000)
    s = await RawSession.open(runtime.port("submission"))
    await s.cmd("EHLO client.example.net")
    auth = base64.b64encode(b"\0alice@example.com\0" + PASSWORD.encode()).decode()
    assert (await s.cmd(f"AUTH PLAIN {auth}"))[0].startswith("235 ")
    assert (await s.cmd("MAIL FROM:<alice@example.com>"))[0].startswith("250 ")
    assert await s.cmd("RCPT TO:<bob@example.com>") == ["452 4.2.2 Mailbox full: bob@example.com"]
    await s.close()


# -- IMAP ------------------------------------------------------------------------------------------

async def test_imap_append_and_copy_over_quota_move_is_free(runtime: ServerRuntime) -> None:
    await set_quota(runtime, "alice@example.com", 5_000)
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    big = message(6_000)
    reply = await c.cmd(b"a1", b"APPEND INBOX {%d+}\r\n" % len(big) + big)
    assert reply == b"a1 NO [OVERQUOTA] mailbox of alice@example.com is full: 0 bytes of 4.9K used, 5.9K more does not fit\r\n"
    two_k = message(2_000)
    for tag in (b"a2", b"a3"):
        assert b" OK [APPENDUID " in await c.cmd(tag, b"APPEND INBOX {%d+}\r\n" % len(two_k) + two_k)
    await c.cmd(b"s", b"SELECT INBOX")
    assert await c.cmd(b"c1", b"COPY 1 Archive") == \
        b"c1 NO [OVERQUOTA] mailbox of alice@example.com is full: 3.9K of 4.9K used, 2.0K more does not fit\r\n"
    moved = await c.cmd(b"m1", b"MOVE 1 Archive")
    assert moved.endswith(b"m1 OK MOVE completed\r\n") and b"* 1 EXPUNGE\r\n" in moved
    assert await used(runtime, "alice@example.com") == 4_000
    # Making room makes APPEND work again.
    await c.cmd(b"d", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    await c.cmd(b"e", b"EXPUNGE")
    reply = await c.cmd(b"a4", b"APPEND INBOX {%d+}\r\n" % len(two_k) + two_k)
    assert b"* 1 EXISTS\r\n" in reply and b"a4 OK [APPENDUID " in reply
    await c.close()


# -- REST ------------------------------------------------------------------------------------------

async def api_login(http: aiohttp.ClientSession, base: str, user: str) -> dict[str, str]:
    async with http.post(f"{base}/auth/login", json={"username": user, "password": PASSWORD}) as resp:
        assert resp.status == 200
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_rest_append_and_send_over_quota_are_507(runtime: ServerRuntime) -> None:
    base = f"http://127.0.0.1:{runtime.port('api')}"
    await set_quota(runtime, "alice@example.com", 3_000)
    async with aiohttp.ClientSession() as http:
        alice = await api_login(http, base, "alice@example.com")
        raw = {**alice, "Content-Type": "message/rfc822"}
        async with http.post(f"{base}/folders/INBOX/messages", data=message(4_000), headers=raw) as resp:
            assert resp.status == 507
            assert await resp.json() == {"error": "mailbox of alice@example.com is full: 0 bytes of 2.9K used,"
                                                 " 3.9K more does not fit"}
        async with http.post(f"{base}/folders/INBOX/messages", data=message(2_500), headers=raw) as resp:
            assert resp.status == 201
        # The Sent copy would not fit: refused before anything is sent.
        send = {"to": ["bob@example.com"], "subject": "hi", "body": "z" * 1_000}
        async with http.post(f"{base}/messages/send", json=send, headers=alice) as resp:
            assert resp.status == 507
            assert (await resp.json())["error"].startswith("mailbox of alice@example.com is full")
        assert await inbox(runtime, "bob@example.com") == []
        # A recipient whose mailbox is full (and no other recipient): 507 too.
        await set_quota(runtime, "alice@example.com", None)
        await set_quota(runtime, "bob@example.com", 1)
        async with http.post(f"{base}/messages/send", json=send, headers=alice) as resp:
            assert resp.status == 507
            assert await resp.json() == {"error": "mailbox full: bob@example.com"}
        await set_quota(runtime, "bob@example.com", None)
        async with http.post(f"{base}/messages/send", json=send, headers=alice) as resp:
            assert resp.status == 202
        assert len(await inbox(runtime, "bob@example.com")) == 1

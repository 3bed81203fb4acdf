"""The IMAP server end to end through imaplib, IMAPClient and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import ssl
from pathlib import Path

import pytest
from imapclient import IMAPClient

from rmail.server.imap import start
from rmail.server.runtime import ServerRuntime
from tests.conftest import PASSWORD
from tests.helpers.server import make_config

from . import caps
from .conftest import RawClient

ALWAYS = ("IMAP4REV1", "IMAP4REV2", "IDLE", "SPECIAL-USE", "NAMESPACE", "UIDPLUS", "MOVE", "ID",
          "ENABLE", "UNSELECT", "LITERAL+", "CONDSTORE", "QRESYNC")
#: The mailbox-list extensions (protocol.MAILBOX_CAPABILITIES).
MAILBOX = ("LIST-EXTENDED", "LIST-STATUS", "CHILDREN", "CREATE-SPECIAL-USE", "STATUS=SIZE",
           "APPENDLIMIT=26214400")
#: Extensions advertised beside the "always" list.
EXTENSIONS = ("ESEARCH", "SEARCHRES", "CONTEXT=SEARCH", "WITHIN", "SORT", "SORT=DISPLAY",
              "ESORT", "CONTEXT=SORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")
#: The message extensions (protocol.MESSAGE_CAPABILITIES).
MESSAGE = ("BINARY", "MULTIAPPEND", "CATENATE", "PREVIEW", "URLAUTH", "URLAUTH=BINARY", "OBJECTID", "SAVEDATE")
MSG = (b"From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: Hello there\r\n"
       b"Date: Tue, 05 Mar 2024 09:08:07 +0100\r\nMessage-ID: <m1@example.com>\r\n\r\n"
       b"Body with the word zebra.\r\n")


def in_thread(fn):  # noqa: ANN001, ANN201
    return asyncio.to_thread(fn)


async def test_spec_example_with_imaplib(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")
    await runtime.store.append((await runtime.store.get_mailbox(
        (await runtime.accounts.get_user("alice@example.com")).id, "INBOX")).id, MSG)

    def client() -> None:
        imap = imaplib.IMAP4("127.0.0.1", port)
        assert set(ALWAYS) | set(MAILBOX) | set(EXTENSIONS) | set(MESSAGE) | {
            "AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR"} == set(imap.capabilities)
        imap.login("alice@example.com", PASSWORD)
        imap.select("INBOX")
        status, data = imap.search(None, "ALL")
        assert status == "OK" and data == [b"1"]
        for num in data[0].split():
            status, msg = imap.fetch(num, "(BODY.PEEK[])")
            assert msg[0][1] == MSG
        assert imap.fetch(b"1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]
        imap.logout()
    await in_thread(client)


async def test_imapclient_full_workflow(runtime: ServerRuntime) -> None:
    port = runtime.port("imap")

    def client() -> None:
        c = IMAPClient("127.0.0.1", port=port, ssl=False)
        c.login("alice@example.com", PASSWORD)
        folders = {f[2]: f[0] for f in c.list_folders()}
        assert b"\\Sent" in folders["Sent"] and set(folders) >= {"INBOX", "Trash", "Archive"}
        assert c.namespace().personal == (("", "/"),)
        assert c.id_({"name": "pytest"})[0][:2] == (b"name", b"rmail")
        c.create_folder("Work/Projects/\u00e9t\u00e9")
        assert "Work/Projects/\u00e9t\u00e9" in [f[2] for f in c.list_folders("Work/", "*")]
        assert [f[2] for f in c.list_folders("", "Work/%")] == ["Work/Projects"]
        uid = int(c.append("INBOX", MSG, flags=[b"\\Flagged", b"$Label"]).split()[2].rstrip(b"]"))
        c.append("INBOX", MSG.replace(b"zebra", b"giraffe").replace(b"Hello", b"Bye"))
        info = c.select_folder("INBOX")
        assert info[b"EXISTS"] == 2 and info[b"UIDNEXT"] == uid + 2
        assert c.search(["FLAGGED"]) == [uid]
        assert c.search(["TEXT", "zebra"]) == [uid]
        assert c.search(["OR", "SUBJECT", "bye", "KEYWORD", "$Label"]) == [uid, uid + 1]
        assert c.search(["NOT", ["FROM", "bob"]]) == []
        assert c.search(["SENTON", "5-Mar-2024", "LARGER", "10", "UID", f"{uid + 1}:*"]) == [uid + 1]
        data = c.fetch([uid], ["ENVELOPE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "RFC822.SIZE",
                               "BODY[TEXT]<5.4>"])[uid]
        assert data[b"ENVELOPE"].subject == b"Hello there"
        assert data[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: Hello there\r\n\r\n"
        assert data[b"RFC822.SIZE"] == len(MSG)
        assert data[b"BODY[TEXT]<5>"] == b"with"
        assert b"\\Seen" in c.get_flags([uid])[uid]  # non-PEEK BODY[TEXT] set \Seen
        c.remove_flags([uid], [b"\\Seen"])
        assert c.search(["UNSEEN"]) == [uid, uid + 1]
        c.copy([uid], "Archive")
        c.move([uid + 1], "Trash")
        assert c.search(["ALL"]) == [uid]
        c.add_flags([uid], [b"\\Deleted"])
        c.uid_expunge([uid])
        assert c.search(["ALL"]) == []
        st = c.folder_status("Archive", ["MESSAGES", "UNSEEN", "UIDNEXT"])
        assert st[b"MESSAGES"] == 1 and st[b"UNSEEN"] == 1
        c.rename_folder("Work", "Play")
        assert "Play/Projects/\u00e9t\u00e9" in [f[2] for f in c.list_folders()]
        c.delete_folder("Play/Projects/\u00e9t\u00e9")
        c.unselect_folder()
        c.logout()
    await in_thread(client)


async def test_states_and_errors_raw(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    greeting = await c.line()
    assert greeting.startswith(b"* OK [CAPABILITY " + caps.BEFORE_LOGIN + b"]")
    assert (await c.cmd(b"a1", b"SELECT INBOX")).startswith(b"a1 BAD SELECT not allowed")
    assert await c.cmd(b"a2", b"FROB") == b"a2 BAD unknown command FROB\r\n"
    assert await c.cmd(b"a3", b"LOGIN alice@example.com wrong") == \
        b"a3 NO [AUTHENTICATIONFAILED] invalid credentials\r\n"
    await c.login(greeting=False)
    assert (await c.cmd(b"a4", b"FETCH 1 FLAGS")).startswith(b"a4 BAD FETCH not allowed")
    assert await c.cmd(b"a5", b"SELECT Nope") == b"a5 NO [NONEXISTENT] no mailbox named Nope\r\n"
    assert (await c.cmd(b"a6", b"EXAMINE INBOX")).endswith(b"a6 OK [READ-ONLY] EXAMINE completed\r\n")
    assert await c.cmd(b"a7", b"FETCH 1 FLAGS") == b"a7 BAD the mailbox is empty\r\n"
    assert await c.cmd(b"a8", b"EXPUNGE") == b"a8 NO [READ-ONLY] mailbox is read-only\r\n"
    assert await c.cmd(b"a9", b"APPEND Nope {1+}\r\nx") == b"a9 NO [TRYCREATE] no such mailbox\r\n"
    assert await c.cmd(b"b1", b"ENABLE CONDSTORE") == (
        b"* OK [HIGHESTMODSEQ 1] highest mod-sequence\r\n* ENABLED CONDSTORE\r\nb1 OK ENABLE completed\r\n")
    assert await c.cmd(b"b2", b"LIST \"\" \"\"") == b'* LIST (\\Noselect) "/" ""\r\nb2 OK LIST completed\r\n'
    assert await c.cmd(b"b3", b"LOGOUT") == b"* BYE rmail logging out\r\nb3 OK LOGOUT completed\r\n"
    assert await c.line() == b""
    await c.close()


async def test_authenticate_plain_and_login(runtime: ServerRuntime) -> None:
    import base64
    c = await RawClient.connect(runtime.port("imap"))
    await c.line()
    plain = base64.b64encode(b"\0alice@example.com\0" + PASSWORD.encode())
    await c.send(b"p1 AUTHENTICATE PLAIN\r\n")
    assert await c.line() == b"+ \r\n"
    await c.send(plain + b"\r\n")
    assert (await c.line()).startswith(b"p1 OK [CAPABILITY IMAP4rev1")
    await c.close()
    c = await RawClient.connect(runtime.port("imap"))
    await c.line()
    await c.send(b"p2 AUTHENTICATE LOGIN\r\n")
    assert await c.line() == b"+ VXNlcm5hbWU6\r\n"
    await c.send(base64.b64encode(b"alice@example.com") + b"\r\n")
    assert await c.line() == b"+ UGFzc3dvcmQ6\r\n"
    await c.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert (await c.line()).startswith(b"p2 OK")
    await c.close()
    c = await RawClient.connect(runtime.port("imap"))
    await c.line()
    await c.send(b"p3 AUTHENTICATE PLAIN\r\n")
    await c.line()
    await c.send(b"*\r\n")
    assert await c.line() == b"p3 BAD authentication cancelled\r\n"
    assert await c.cmd(b"p4", b"AUTHENTICATE CRAM-MD5") == b"p4 NO [CANNOT] unsupported mechanism\r\n"
    await c.close()


async def test_literal_limits_and_partial_literal(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "data", limits={"message_size": 1000})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        c = await RawClient.connect(rt.port("imap"))
        await c.login()
        # Synchronizing: refused before any continuation is sent.
        await c.send(b"t1 APPEND INBOX {1001}\r\n")
        assert await c.line() == b"t1 NO [TOOBIG] literal too large\r\n"
        # LITERAL+: the bytes are already coming; they are dropped and the session goes on.
        await c.send(b"t2 APPEND INBOX {5000+}\r\n" + b"x" * 5000 + b"\r\n")
        assert await c.line() == b"t2 NO [TOOBIG] literal too large\r\n"
        assert await c.cmd(b"t3", b"NOOP") == b"t3 OK NOOP completed\r\n"
        # A client vanishing mid-literal stores nothing.
        await c.send(b"t4 APPEND INBOX {500}\r\n")
        assert await c.line() == b"+ Ready for literal data\r\n"
        await c.send(b"y" * 200)
        await c.close()
        c = await RawClient.connect(rt.port("imap"))
        await c.login()
        assert await c.cmd(b"t5", b"STATUS INBOX (MESSAGES)") == \
            b'* STATUS "INBOX" (MESSAGES 0)\r\nt5 OK STATUS completed\r\n'
        long = b"t6 SEARCH " + b"A" * 70000 + b"\r\n"
        await c.send(long)
        assert await c.line() == b"t6 BAD line too long\r\n"
        deep = b"t7 SEARCH " + b"NOT " * 40 + b"SEEN"
        assert await c.cmd(b"t7", deep[3:]) == b"t7 BAD search expression nested too deeply\r\n"
        await c.close()


async def test_tls_configured_capabilities_and_starttls(tls_runtime: ServerRuntime,
                                                        client_tls_context: ssl.SSLContext) -> None:
    port = tls_runtime.port("imap")
    c = await RawClient.connect(port)
    greeting = await c.line()
    assert b"STARTTLS LOGINDISABLED]" in greeting and b" AUTH=" not in greeting
    assert await c.cmd(b"s1", b"LOGIN alice@example.com " + PASSWORD.encode()) == \
        b"s1 NO [PRIVACYREQUIRED] use STARTTLS before logging in\r\n"
    # Pipelined commands after STARTTLS are discarded, never run inside TLS.
    await c.send(b"s2 STARTTLS\r\ns3 LOGIN alice@example.com " + PASSWORD.encode() + b"\r\n")
    assert await c.line() == b"s2 OK begin TLS negotiation now\r\n"
    await c.writer.start_tls(client_tls_context, server_hostname="localhost")
    caps = await c.cmd(b"s4", b"CAPABILITY")
    assert b"AUTH=PLAIN AUTH=LOGIN" in caps and b"STARTTLS" not in caps
    assert b"s3" not in caps
    assert (await c.cmd(b"s5", b"LOGIN alice@example.com " + PASSWORD.encode())).startswith(b"s5 OK")
    await c.close()

    def implicit() -> None:
        cl = IMAPClient("127.0.0.1", port=tls_runtime.port("imaps"), ssl=True,
                        ssl_context=client_tls_context)
        caps = cl.capabilities()
        assert b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps
        cl.login("alice@example.com", PASSWORD)
        assert cl.select_folder("INBOX")[b"EXISTS"] == 0
        cl.logout()

    def starttls_imaplib() -> None:
        imap = imaplib.IMAP4("127.0.0.1", port)
        assert "LOGINDISABLED" in imap.capabilities
        imap.starttls(ssl_context=client_tls_context)
        imap.login("alice@example.com", PASSWORD)
        imap.logout()
    await in_thread(implicit)
    await in_thread(starttls_imaplib)


async def test_no_993_without_tls(runtime: ServerRuntime) -> None:
    with pytest.raises(KeyError):
        runtime.port("imaps")


async def test_connection_caps_and_throttle(tmp_path: Path) -> None:
    # Alice logs in first, so her address is known for her: only the pair limit can lock her.
    cfg = make_config(tmp_path / "data", limits={"connections_per_user": 1, "auth_pair_failures": 2,
                                                  "connections_per_ip": 2})
    async with ServerRuntime(cfg, auth_delay=0) as rt:
        await rt.accounts.add_user("alice@example.com", PASSWORD)
        port = rt.port("imap")
        a = await RawClient.connect(port)
        await a.login()
        b = await RawClient.connect(port)
        await b.line()
        assert await b.cmd(b"x1", b"LOGIN alice@example.com " + PASSWORD.encode()) == \
            b"x1 NO [LIMIT] too many connections for this user\r\n"
        for tag in (b"x2", b"x3"):
            assert b"AUTHENTICATIONFAILED" in await b.cmd(tag, b"LOGIN alice@example.com nope")
        await a.close()
        assert await b.cmd(b"x4", b"LOGIN alice@example.com " + PASSWORD.encode()) == \
            b"x4 NO [UNAVAILABLE] too many failed logins; try again later\r\n"
        c = await RawClient.connect(port)
        d = await RawClient.connect(port)
        assert await d.line() == b"* BYE too many connections from your address\r\n"
        for x in (b, c, d):
            await x.close()


async def test_autologout(runtime: ServerRuntime) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start(runtime, stack, autologout=0.3, login_timeout=0.3, ports=(0, 0))
        c = await RawClient.connect(server.ports["imap"])
        await c.line()
        assert await c.line(timeout=5) == b"* BYE login timeout; log in sooner after connecting\r\n"
        assert await c.line() == b""
        await c.close()
        c = await RawClient.connect(server.ports["imap"])
        await c.login()
        await c.cmd(b"i0", b"SELECT INBOX")
        await c.send(b"i1 IDLE\r\n")
        assert await c.line() == b"+ idling\r\n"
        assert await c.line(timeout=5) == b"* BYE autologout; idle for too long\r\n"
        await c.close()

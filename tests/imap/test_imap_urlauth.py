"""URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524) over real sockets: GENURLAUTH, URLFETCH
and RESETKEY byte-exact after RFC 4467 §9's example, who may fetch what, tokens that do not
verify, the extended URLFETCH, and the bounds."""

from __future__ import annotations

import hashlib
import hmac

from rmail.server.imap.parser import MAX_URLS
from rmail.server.runtime import ServerRuntime

from .conftest import RawClient
from .test_imap_transcripts import expect

MSG = (b"From: Joe <joe@example.com>\r\nSubject: war and peace\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
       b"--b\r\nContent-Type: text/plain\r\n\r\nintro\r\n"
       b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       b"U2kgdmlzIHBhY2VtLCBwYXJhIGJlbGx1bS4NCg==\r\n"
       b"--b--\r\n")
PART = b"U2kgdmlzIHBhY2VtLCBwYXJhIGJlbGx1bS4NCg=="
DECODED = b"Si vis pacem, para bellum.\r\n"


async def _setup(runtime: ServerRuntime) -> RawClient:
    """Alice logged in, with MSG as INBOX UID 1."""
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    assert (await c.cmd(b"a", b"APPEND INBOX {%d+}\r\n%b" % (len(MSG), MSG))).startswith(b"a OK")
    return c


async def _key(runtime: ServerRuntime) -> bytes:
    alice = await runtime.accounts.get_user("alice@example.com")
    inbox = await runtime.store.get_mailbox(alice.id, "INBOX")
    name = f"urlauth-{alice.id}-{inbox.id}-{inbox.uidvalidity}"
    return await runtime.accounts.directory.secret(name, lambda: b"never made here")


def _token(key: bytes, rump: bytes) -> bytes:
    return hmac.new(key, rump, hashlib.sha256).hexdigest().encode()


async def test_rfc4467_example(runtime: ServerRuntime) -> None:
    c = await _setup(runtime)
    rump = b"imap://alice@example.com/INBOX/;uid=1/;section=2;urlauth=user+alice@example.com"
    await c.send(b'a001 GENURLAUTH "%b" INTERNAL\r\n' % rump)
    line = await c.line()
    key = await _key(runtime)
    full = rump + b":internal:" + _token(key, rump)
    assert line == b'* GENURLAUTH "%b"\r\n' % full
    await expect(c, b"a001 OK GENURLAUTH completed\r\n", b"a001")
    await c.send(b'a002 URLFETCH "%b"\r\n' % full)
    await expect(c, b'* URLFETCH "%b" {%d}\r\n%b\r\na002 OK URLFETCH completed\r\n'
                 % (full, len(PART), PART), b"a002")
    # URLAUTH=BINARY: the structure of the part and its content decoded (RFC 5524 §3);
    # beside BINARY the structure gives the decoded size and lines (28 octets, 1 line).
    await c.send(b'a003 URLFETCH ("%b" BINARY BODYPARTSTRUCTURE BODY)\r\n' % full)
    structure = b'("text" "plain" ("charset" "us-ascii") NIL NIL "base64" 28 1 NIL NIL NIL NIL)'
    await expect(c, b'* URLFETCH "%b" (BODYPARTSTRUCTURE %b BINARY {%d}\r\n%b BODY {%d}\r\n%b)\r\n'
                 b"a003 OK URLFETCH completed\r\n"
                 % (full, structure, len(DECODED), DECODED, len(PART), PART), b"a003")
    await c.send(b'a006 URLFETCH ("%b" BODYPARTSTRUCTURE)\r\n' % full)
    await expect(c, b'* URLFETCH "%b" (BODYPARTSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL'
                 b' "base64" 40 0 NIL NIL NIL NIL))\r\na006 OK URLFETCH completed\r\n' % full, b"a006")
    await c.send(b"a004 RESETKEY INBOX INTERNAL\r\n")
    await expect(c, b"a004 OK [URLMECH INTERNAL] RESETKEY completed\r\n", b"a004")
    await c.send(b'a005 URLFETCH "%b"\r\n' % full)
    await expect(c, b'* URLFETCH "%b" NIL\r\na005 OK URLFETCH completed\r\n' % full, b"a005")
    await c.close()


async def test_who_may_fetch(runtime: ServerRuntime) -> None:
    c = await _setup(runtime)
    base = b"imap://alice@example.com/INBOX;UIDVALIDITY=%d/;uid=1" % (
        (await runtime.store.get_mailbox((await runtime.accounts.get_user("alice@example.com")).id,
                                         "INBOX")).uidvalidity)
    got = await c.cmd(b"g", b'GENURLAUTH "%b;urlauth=authuser" INTERNAL "%b;urlauth=user+alice@example.com"'
                      b' INTERNAL' % (base, base))
    urls = got.split(b"\r\n")[0].split(b'"')[1::2]
    assert len(urls) == 2 and got.endswith(b"g OK GENURLAUTH completed\r\n")
    authuser, only_alice = urls
    bob = await RawClient.connect(runtime.port("imap"))
    await bob.login(b"bob@example.com")
    # authuser: any user of this server; user+alice: alice only.
    reply = await bob.cmd(b"f", b'URLFETCH "%b" "%b"' % (authuser, only_alice))
    assert reply == b'* URLFETCH "%b" {%d}\r\n%b "%b" NIL\r\nf OK URLFETCH completed\r\n' % (
        authuser, len(MSG), MSG, only_alice)
    assert (await c.cmd(b"f", b'URLFETCH "%b"' % only_alice)).startswith(
        b'* URLFETCH "%b" {%d}\r\n' % (only_alice, len(MSG)))
    # Tokens that do not verify: altered, another rump, truncated, another mechanism.
    bad = [authuser[:-1] + (b"0" if authuser[-1:] != b"0" else b"1"),
           authuser.replace(b"uid=1", b"uid=2"),
           authuser.rsplit(b":", 1)[0],
           authuser.replace(b":internal:", b":x-other:"),
           b"imap://alice@example.com/INBOX/;uid=1;urlauth=anonymous:internal:" + b"0" * 64,
           b"not a url"]
    reply = await bob.cmd(b"h", b"URLFETCH " + b" ".join(b'"%b"' % u for u in bad))
    assert reply == b"* URLFETCH" + b"".join(b' "%b" NIL' % u for u in bad) + \
        b"\r\nh OK URLFETCH completed\r\n"
    # RESETKEY with no mailbox revokes every key of the user.
    assert await c.cmd(b"r", b"RESETKEY") == b"r OK RESETKEY completed\r\n"
    assert await bob.cmd(b"f", b'URLFETCH "%b"' % authuser) == \
        b'* URLFETCH "%b" NIL\r\nf OK URLFETCH completed\r\n' % authuser
    await bob.close()
    await c.close()


async def test_expired_url(runtime: ServerRuntime) -> None:
    c = await _setup(runtime)
    rump = b"imap://alice@example.com/INBOX/;uid=1;expire=2001-01-01T00:00:00Z;urlauth=authuser"
    url = (await c.cmd(b"g", b'GENURLAUTH "%b" INTERNAL' % rump)).split(b'"')[1]
    assert await c.cmd(b"f", b'URLFETCH "%b"' % url) == \
        b'* URLFETCH "%b" NIL\r\nf OK URLFETCH completed\r\n' % url
    await c.close()


async def test_genurlauth_refusals(runtime: ServerRuntime) -> None:
    c = await _setup(runtime)
    own = b"imap://alice@example.com/INBOX/;uid=1"
    cases = [
        (b'"%b;urlauth=anonymous" INTERNAL' % own, b"g NO only authuser and user+ access is offered\r\n"),
        (b'"%b;urlauth=submit+alice" INTERNAL' % own, b"g NO only authuser and user+ access is offered\r\n"),
        (b'"%b;urlauth=authuser" XSAMPLE' % own, b"g NO unknown mechanism XSAMPLE; only INTERNAL\r\n"),
        (b'"imap://bob@example.com/INBOX/;uid=1;urlauth=authuser" INTERNAL',
         b"g NO [BADURL imap://bob@example.com/INBOX/;uid=1;urlauth=authuser] URLs can be made for"
         b" your own mailboxes only\r\n"),
        (b'"%b;urlauth=authuser:internal:%b" INTERNAL' % (own, b"0" * 32),
         b"g BAD give the URL without a mechanism and token\r\n"),
        (b'"imap://alice@example.com/INBOX/;uid=7;urlauth=authuser" INTERNAL',
         b"g NO [BADURL imap://alice@example.com/INBOX/;uid=7;urlauth=authuser] the URL does not"
         b" name one of your messages\r\n"),
        (b'"/INBOX/;uid=1;urlauth=authuser" INTERNAL',
         b"g BAD invalid URLAUTH URL: not an absolute imap:// URL\r\n"),
        (b'"%b" INTERNAL' % own, b"g BAD invalid URLAUTH URL: no URLAUTH\r\n"),
    ]
    for args, wanted in cases:
        assert await c.cmd(b"g", b"GENURLAUTH " + args) == wanted, args
    assert await c.cmd(b"r", b"RESETKEY Nope") == b"r NO [NONEXISTENT] no mailbox named Nope\r\n"
    assert await c.cmd(b"r", b"RESETKEY INBOX XSAMPLE") == \
        b"r NO unknown mechanism XSAMPLE; only INTERNAL\r\n"
    many = b" ".join(b'"x"' for _ in range(MAX_URLS + 1))
    assert await c.cmd(b"u", b"URLFETCH " + many) == \
        b"u NO [LIMIT] too many URLs (at most %d)\r\n" % MAX_URLS
    assert await c.cmd(b"u", b'URLFETCH ("x" BOGUS)') == b"u BAD unknown URLFETCH parameter BOGUS\r\n"
    # Not before login.
    anon = await RawClient.connect(runtime.port("imap"))
    await anon.line()
    assert (await anon.cmd(b"n", b'URLFETCH "x"')).startswith(b"n BAD URLFETCH not allowed")
    await anon.close()
    await c.close()

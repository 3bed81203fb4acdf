"""Base-protocol rules imaptest's scripted suite checks, each through a real session: SENT*
dates are the sender's calendar day, address keys match parsed addresses, and mailbox names
that are not modified UTF-7 (or are raw 8-bit) are answered as RFC 3501 asks."""

from __future__ import annotations

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient


async def _inbox(runtime: ServerRuntime, *messages: bytes) -> None:
    user = await runtime.accounts.get_user("alice@example.com")
    box = await runtime.store.get_mailbox(user.id, "INBOX")
    for msg in messages:
        await runtime.store.append(box.id, msg)


async def _selected(runtime: ServerRuntime) -> RawClient:
    client = await RawClient.connect(runtime.port("imap"))
    await client.login()
    assert b"\r\ns OK [READ-WRITE]" in await client.cmd(b"s", b"SELECT INBOX")
    return client


def _dated(date: bytes) -> bytes:
    return b"From: a@example.com\r\nDate: " + date + b"\r\nSubject: d\r\n\r\nbody\r\n"


async def test_sent_keys_compare_the_senders_calendar_day(runtime: ServerRuntime) -> None:
    # In UTC these are 24 Mar 21:00, 24 Mar 22:00, 25 Mar 20:00 and 25 Mar 21:00: the
    # written days are 24, 25, 25 and 26 March.
    await _inbox(runtime, _dated(b"Sat, 24 Mar 2007 23:00:00 +0200"),
                 _dated(b"Sun, 25 Mar 2007 00:00 +0200"),
                 _dated(b"Sun, 25 Mar 2007 23:00:00 +0300"),
                 _dated(b"Mon, 26 Mar 2007 00:00:00 +0300"))
    client = await _selected(runtime)
    try:
        for key, hits in [(b"SENTON 25-Mar-2007", b"2 3"), (b"SENTON 24-Mar-2007", b"1"),
                          (b"SENTON 26-Mar-2007", b"4"), (b"SENTBEFORE 25-Mar-2007", b"1"),
                          (b"SENTBEFORE 26-Mar-2007", b"1 2 3"),
                          (b"SENTSINCE 25-Mar-2007", b"2 3 4"),
                          (b"2:4 SENTSINCE 26-Mar-2007", b"4")]:
            assert await client.cmd(b"t", b"SEARCH " + key) == (
                b"* SEARCH " + hits + b"\r\nt OK SEARCH completed\r\n"), key
    finally:
        await client.close()


def _addressed(fields: bytes) -> bytes:
    return fields + b"Subject: a\r\n\r\nbody\r\n"


async def test_address_keys_match_parsed_addresses_and_names(runtime: ServerRuntime) -> None:
    await _inbox(runtime,
                 _addressed(b"From: user-from@domain.org\r\nTo: user-to@domain.org\r\n"),
                 _addressed(b"From: RealFrom <user-from@domain.org>\r\n"
                            b"Bcc: RealBcc <user-bcc@domain.org>\r\n"),
                 _addressed(b"From: <user-from (comment)@ (comment) domain.org>\r\n"
                            b"Cc: <user-cc@domain.org>\r\n"),
                 _addressed(b"From: user-from@domain.org (RealFrom)\r\n"
                            b"X-Other: user-from@domain.org\r\n"),
                 _addressed(b"From: RealFrom <user-from@domain.org>\r\n"
                            b"To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n"
                            b"    other@domain.org\r\n"),
                 _addressed(b"From: x@y.org\r\nTo: groupname:;\r\n"))
    client = await _selected(runtime)
    try:
        for key, hits in [(b"FROM user-from@domain.org", b" 1 2 3 4 5"),
                          (b"FROM USER-FROM@DOMAIN.ORG", b" 1 2 3 4 5"),
                          (b"FROM realfrom", b" 2 4 5"), (b"FROM ealfro", b" 2 4 5"),
                          (b"FROM comment", b""), (b"FROM <user", b""),
                          (b"BCC realbcc", b" 2"), (b"CC user-cc@domain.org", b" 3"),
                          (b"TO user-to", b" 1"), (b"TO groupname", b" 5 6"),
                          (b"TO groupuser2", b" 5"), (b"TO other@domain.org", b" 5"),
                          (b'TO ""', b" 1 5 6"),
                          # HEADER keeps matching the field's raw text.
                          (b"HEADER From comment", b" 3"), (b"HEADER From <user", b" 2 3 5")]:
            assert await client.cmd(b"t", b"SEARCH " + key) == (
                b"* SEARCH" + hits + b"\r\nt OK SEARCH completed\r\n"), key
    finally:
        await client.close()


async def test_names_not_modified_utf7(runtime: ServerRuntime) -> None:
    client = await RawClient.connect(runtime.port("imap"))
    await client.login()
    name = b"!#$&'+,-.0123456789:;<=>?@^_`|[}"  # every atom char imaptest's "atoms" tries
    try:
        for cmd, reply in [
            (b"SELECT " + name,
             b"t NO [NONEXISTENT] no mailbox has a name that is not modified UTF-7\r\n"),
            (b"EXAMINE &Jjo", b"t NO [NONEXISTENT] no mailbox has a name that is not modified UTF-7\r\n"),
            (b"STATUS &AGE- (MESSAGES)",
             b"t NO [NONEXISTENT] no mailbox has a name that is not modified UTF-7\r\n"),
            (b'LIST "" ' + name + b"%*", b"t OK LIST completed\r\n"),
            (b"CREATE &Jjo",
             b"t NO [CANNOT] mailbox names must be modified UTF-7 (RFC 3501 5.1.3)\r\n"),
            (b"CREATE {5+}\r\ncaf\xc3\xa9",
             b"t NO [CANNOT] mailbox names must be modified UTF-7 (RFC 3501 5.1.3)\r\n"),
            (b"CREATE caf&AOk-", b"t OK [MAILBOXID (F"),  # then the id (RFC 8474)
            (b"SELECT {5+}\r\ncaf\xc3\xa9", None),  # an 8-bit lookup still finds it
        ]:
            got = await client.cmd(b"t", cmd)
            if reply is None:
                assert b"\r\nt OK [READ-WRITE]" in got
            else:
                assert got == reply or (reply.endswith(b"(F") and got.startswith(reply)), cmd
    finally:
        await client.close()

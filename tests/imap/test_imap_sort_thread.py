"""SORT and THREAD (RFC 5256, SORT=DISPLAY RFC 5957) over a live server, byte for byte.

The RFC's own examples are replayed on mailboxes built so that the RFC's answers are the
right ones: §3's SORT examples (A282-A284), §3's THREAD examples (A283-A285, the same 43
messages threaded both ways) and §4's THREAD responses (``(2)(3 6 (4 23)(44 7 96))`` and
``((3)(5))``). Then the rest of the surface: UID SORT/THREAD, every key, the refusals, and
no EXPUNGE while they run.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

OLD = datetime(1993, 6, 1, tzinfo=timezone.utc)
NEW = datetime(2000, 3, 6, tzinfo=timezone.utc)


async def _mailbox(runtime: ServerRuntime, name: str) -> int:
    user = await runtime.accounts.get_user("alice@example.com")
    if name != "INBOX":
        await runtime.store.create_mailbox(user.id, name)
    return (await runtime.store.get_mailbox(user.id, name)).id


def _message(n: int, *, subject: str | None = None, date: datetime | None = None,
             msgid: str | None = None, refs: str | None = None, extra: str = "") -> bytes:
    head = f"From: sender{n}@example.com\r\n"
    if subject is not None:
        head += f"Subject: {subject}\r\n"
    if date is not None:
        head += f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
    if msgid is not None:
        head += f"Message-ID: <{msgid}>\r\n"
    if refs is not None:
        head += f"References: {refs}\r\n"
    return (head + extra + f"\r\nmessage {n}\r\n").encode()


async def _session(runtime: ServerRuntime, mailbox: str) -> RawClient:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    reply = await c.cmd(b"s", b"SELECT " + mailbox.encode())
    assert reply.endswith(b"s OK [READ-WRITE] SELECT completed\r\n"), reply
    return c


async def test_rfc5256_sort_examples(runtime: ServerRuntime) -> None:
    """§3: A282 on a mailbox of 882 messages of which 2, 84 and 882 are new enough;
    A283 and A284 on five messages."""
    inbox = await _mailbox(runtime, "INBOX")
    chosen = {2: "apples", 84: "Re: bananas", 882: "[fwd: cherries]"}
    for n in range(1, 883):
        subject = chosen.get(n, "zebra")
        await runtime.store.append(inbox, _message(n, subject=subject),
                                   internaldate=NEW if n in chosen else OLD)
    five = await _mailbox(runtime, "Five")
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    # SUBJECT, then REVERSE DATE: 5 (a); 3, 4 (b, 3 newer); 1, 2 (c, 1 newer).
    for n, (subject, hours) in enumerate([("c", 5), ("Re: c", 4), ("b", 3), ("B", 2), ("a", 1)], 1):
        await runtime.store.append(five, _message(n, subject=subject, date=base + timedelta(hours=hours)))
    c = await _session(runtime, "INBOX")
    assert await c.cmd(b"A282", b"SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994") == (
        b"* SORT 2 84 882\r\n"
        b"A282 OK SORT completed\r\n")
    await c.cmd(b"s2", b"SELECT Five")
    assert await c.cmd(b"A283", b"SORT (SUBJECT REVERSE DATE) UTF-8 ALL") == (
        b"* SORT 5 3 4 1 2\r\n"
        b"A283 OK SORT completed\r\n")
    assert await c.cmd(b"A284", b'SORT (SUBJECT) US-ASCII TEXT "not in mailbox"') == (
        b"* SORT\r\n"
        b"A284 OK SORT completed\r\n")
    await c.close()


# §3's THREAD examples: 43 messages (166-208) threaded by ORDEREDSUBJECT and by REFERENCES.
# Sent dates follow this order; subjects and references are chosen so that both of the RFC's
# answers follow (see the test's docstring).
_DATE_ORDER = [166, 167, 168, 169, 172, 170, 171, 173, 174, 175, 176, 178, 179, 177, 183, 182,
               188, 184, 185, 186, 187, 189, 181, 180, 190, 191, 192, 193, 194, 195, 196, 197,
               198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208]
_SUBJECTS = {
    **{n: "reorganisation" for n in (174, 175, 176, 178, 181, 180)},
    **{n: "Budget" for n in (177, 183, 182, 188, 184, 185, 186, 187, 189)},
    194: "lunch", 195: "Lunch", 196: "dinner", 197: "Re: Dinner", 198: "re: dinner",
    200: "party", 202: "Re: party", 205: "picnic", 206: "concert", 207: "Re: concert",
}
_REFERENCES = {
    170: "<lost@example.com>", 179: "<lost@example.com>",
    184: "<m188@example.com>", 189: "<m188@example.com>", 186: "<m185@example.com>",
    196: "<m195@example.com>", 198: "<m197@example.com>",
    206: "<m205@example.com>", 207: "<m205@example.com> <m206@example.com>",
}


async def test_rfc5256_thread_examples(runtime: ServerRuntime) -> None:
    """§3 A283-A285: messages 166-208 arrived after 5-Mar-2000, 1-165 before.

    ORDEREDSUBJECT groups equal base subjects ("Re: Dinner" is "dinner"); REFERENCES joins
    170 and 179 under their missing common parent, keeps 174's six same-subject messages
    (none a reply) under a dummy, threads 184 and 189 under 188 and 186 under 185, and makes
    the reply 202 a child of 200 by subject."""
    inbox = await _mailbox(runtime, "INBOX")
    start = datetime(2000, 3, 6, 8, 0, tzinfo=timezone.utc)
    sent = {n: start + timedelta(minutes=k) for k, n in enumerate(_DATE_ORDER)}
    for n in range(1, 209):
        if n < 166:
            await runtime.store.append(inbox, _message(n, subject=f"old {n}"), internaldate=OLD)
            continue
        await runtime.store.append(inbox, _message(
            n, subject=_SUBJECTS.get(n, f"topic {n}"), date=sent[n], msgid=f"m{n}@example.com",
            refs=_REFERENCES.get(n)), internaldate=NEW)
    c = await _session(runtime, "INBOX")
    assert await c.cmd(b"A283", b"THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000") == (
        b"* THREAD (166)(167)(168)(169)(172)(170)(171)(173)(174 (175)(176)(178)(181)(180))"
        b"(179)(177 (183)(182)(188)(184)(185)(186)(187)(189))(190)(191)(192)(193)(194 195)"
        b"(196 (197)(198))(199)(200 202)(201)(203)(204)(205)(206 207)(208)\r\n"
        b"A283 OK THREAD completed\r\n")
    assert await c.cmd(b"A284", b'THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"') == (
        b"* THREAD\r\n"
        b"A284 OK THREAD completed\r\n")
    assert await c.cmd(b"A285", b"THREAD REFERENCES UTF-8 SINCE 5-MAR-2000") == (
        b"* THREAD (166)(167)(168)(169)(172)((170)(179))(171)(173)((174)(175)(176)(178)(181)"
        b"(180))((177)(183)(182)(188 (184)(189))(185 186)(187))(190)(191)(192)(193)((194)"
        b"(195 196))(197 198)(199)(200 202)(201)(203)(204)(205 206 207)(208)\r\n"
        b"A285 OK THREAD completed\r\n")
    await c.close()


async def test_rfc5256_thread_responses(runtime: ServerRuntime) -> None:
    """§4's THREAD response examples: 3 → 6 → (4 → 23, 44 → 7 → 96) beside 2 (later
    messages parents of earlier ones), and 3 and 5 under a parent that is not there."""
    inbox = await _mailbox(runtime, "INBOX")
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    tree = {2: None, 3: None, 6: "<m3@x>", 4: "<m3@x> <m6@x>", 23: "<m6@x> <m4@x>",
            44: "<m6@x>", 7: "<m44@x>", 96: "<m3@x> <m6@x> <m44@x> <m7@x>"}
    for n in range(1, 97):
        extra = "X-Example: tree\r\n" if n in tree else ""
        # 4 was written before 44; 2 before 3 (the roots' and siblings' order).
        await runtime.store.append(inbox, _message(
            n, date=base + timedelta(hours=n), msgid=f"m{n}@x", refs=tree.get(n), extra=extra))
    pair = await _mailbox(runtime, "Pair")
    for n in range(1, 6):
        await runtime.store.append(pair, _message(
            n, date=base + timedelta(hours=n), msgid=f"p{n}@x",
            refs="<gone@x>" if n in (3, 5) else None))
    c = await _session(runtime, "INBOX")
    assert await c.cmd(b"t1", b"THREAD REFERENCES UTF-8 HEADER X-Example tree") == (
        b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
        b"t1 OK THREAD completed\r\n")
    await c.cmd(b"s2", b"SELECT Pair")
    assert await c.cmd(b"t2", b"THREAD REFERENCES UTF-8 3,5") == (
        b"* THREAD ((3)(5))\r\n"
        b"t2 OK THREAD completed\r\n")
    await c.close()


async def _addressed(runtime: ServerRuntime) -> RawClient:
    """Five messages with From/To/Cc, sizes, sent and arrival dates all different."""
    inbox = await _mailbox(runtime, "INBOX")
    base = datetime(2024, 5, 1, tzinfo=timezone.utc)
    rows = [  # From, To, Cc, sent (hours), arrival (hours), padding
        ("Zoe <b@x.org>", "c@x.org", "undisclosed:;", 3, 1, 1000),
        ("=?utf-8?q?=C3=89mile?= <z@x.org>", "Amy <y@x.org>", None, None, 5, 0),
        ("a@x.org", "team: q@x.org, r@x.org;", "b@x.org", 1, 4, 3000),
        (None, '"Doe, John" <d@x.org>', "a@x.org", 2, 2, 2000),
        ("Émile <e@x.org>", None, "Z@x.org", 4, 3, 500),
    ]
    for n, (frm, to, cc, sent, arrival, pad) in enumerate(rows, 1):
        head = "".join(f"{k}: {v}\r\n" for k, v in (("From", frm), ("To", to), ("Cc", cc))
                       if v is not None)
        if sent is not None:
            head += (base + timedelta(hours=sent)).strftime("Date: %a, %d %b %Y %H:%M:%S +0000\r\n")
        await runtime.store.append(inbox, (head + "\r\n" + "x" * pad + "\r\n").encode(),
                                   internaldate=base + timedelta(hours=arrival))
    return await _session(runtime, "INBOX")


async def test_every_sort_key(runtime: ServerRuntime) -> None:
    c = await _addressed(runtime)
    cases = [
        (b"ARRIVAL", b"1 4 5 3 2"),
        (b"DATE", b"3 4 1 5 2"),          # 2 has no Date: its arrival (5 h) counts
        (b"SIZE", b"2 5 1 4 3"),
        (b"FROM", b"4 3 1 5 2"),          # "" (no From), a, b, e, z
        (b"TO", b"5 1 4 3 2"),            # "", c, d, the group's name "team", y
        (b"CC", b"2 4 3 1 5"),            # "", a, b, "undisclosed" (a group), Z
        (b"DISPLAYFROM", b"4 3 2 5 1"),   # "", a@x.org, Émile, Émile, Zoe
        (b"DISPLAYTO", b"5 2 1 4 3"),     # "", Amy, c@x.org, "Doe, John", team
        (b"REVERSE DISPLAYFROM", b"1 2 5 3 4"),  # the tie (2, 5) keeps its order
        (b"DISPLAYFROM ARRIVAL", b"4 3 5 2 1"),          # the tie by the second key
        (b"DISPLAYFROM REVERSE ARRIVAL", b"4 3 2 5 1"),
    ]
    for key, answer in cases:
        assert await c.cmd(b"k", b"SORT (" + key + b") UTF-8 ALL") == (
            b"* SORT " + answer + b"\r\nk OK SORT completed\r\n"), key
    await c.close()


async def test_uid_sort_and_uid_thread(runtime: ServerRuntime) -> None:
    c = await _addressed(runtime)
    await c.cmd(b"d", b"STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    await c.cmd(b"e", b"EXPUNGE")  # UIDs 2, 4, 5 are now messages 1, 2, 3
    assert await c.cmd(b"u1", b"UID SORT (REVERSE SIZE) UTF-8 ALL") == (
        b"* SORT 4 5 2\r\nu1 OK SORT completed\r\n")
    assert await c.cmd(b"u2", b"SORT (REVERSE SIZE) US-ASCII ALL") == (
        b"* SORT 2 3 1\r\nu2 OK SORT completed\r\n")
    assert await c.cmd(b"u3", b"UID SORT (DATE) UTF-8 UID 4:*") == (
        b"* SORT 4 5\r\nu3 OK SORT completed\r\n")
    assert await c.cmd(b"u4", b"UID THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (4 (5)(2))\r\nu4 OK THREAD completed\r\n")  # no subjects: one thread
    assert await c.cmd(b"u5", b"UID THREAD REFERENCES UTF-8 NOT UID 5") == (
        b"* THREAD (4)(2)\r\nu5 OK THREAD completed\r\n")
    assert await c.cmd(b"u6", b"THREAD REFERENCES UTF-8 SUBJECT nothing") == (
        b"* THREAD\r\nu6 OK THREAD completed\r\n")
    await c.close()


async def test_refusals(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    assert await c.cmd(b"r1", b"SORT (DATE) UTF-8 ALL") == (
        b"r1 BAD SORT not allowed in the authenticated state\r\n")
    assert await c.cmd(b"r2", b"UID THREAD REFERENCES UTF-8 ALL") == (
        b"r2 BAD THREAD not allowed in the authenticated state\r\n")
    await c.cmd(b"s", b"SELECT INBOX")
    assert await c.cmd(b"r3", b"SORT (DATE) ISO-8859-1 ALL") == (
        b"r3 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n")
    assert await c.cmd(b"r4", b"THREAD REFERENCES KOI8-R ALL") == (
        b"r4 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n")
    assert await c.cmd(b"r5", b"SORT (NAME) UTF-8 ALL") == b"r5 BAD unknown sort key NAME\r\n"
    assert await c.cmd(b"r6", b"SORT (DATE) UTF-8") == b"r6 BAD expected SP\r\n"
    assert await c.cmd(b"r7", b"THREAD JWZ UTF-8 ALL") == (
        b"r7 BAD unknown threading algorithm JWZ\r\n")
    assert await c.cmd(b"r8", b"SORT (DATE) UTF-8 9") == b"* SORT\r\nr8 OK SORT completed\r\n"
    await c.close()


async def test_no_expunge_while_sort_or_thread_runs(runtime: ServerRuntime) -> None:
    """RFC 5256 §3 (as RFC 3501 §7.4.1 for SEARCH): another session's EXPUNGE is told only
    after SORT and THREAD, so their numbers stay valid; the next NOOP tells it. Until then
    the expunged message is still there for this session, sorted by what the session knows
    of it (its arrival, also as its sent date)."""
    a = await _addressed(runtime)
    b = await _session(runtime, "INBOX")
    assert await b.cmd(b"b1", b"STORE 1 +FLAGS.SILENT (\\Deleted)") == b"b1 OK STORE completed\r\n"
    assert await b.cmd(b"b2", b"EXPUNGE") == b"* 1 EXPUNGE\r\nb2 OK EXPUNGE completed\r\n"
    assert await a.cmd(b"a1", b"SORT (ARRIVAL) UTF-8 ALL") == (
        b"* SORT 1 4 5 3 2\r\na1 OK SORT completed\r\n")
    assert await a.cmd(b"a2", b"UID THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (1 (3)(4)(5)(2))\r\na2 OK THREAD completed\r\n")
    assert await a.cmd(b"a3", b"NOOP") == b"* 1 EXPUNGE\r\na3 OK NOOP completed\r\n"
    await a.close()
    await b.close()

"""The selected mailbox deleted by another session: the session ends with an untagged BYE on
its next command or while it IDLEs, never NO forever; RENAME keeps the session working."""

from __future__ import annotations

from rmail.server.runtime import ServerRuntime

from .conftest import RawClient

BYE = b"* BYE Selected mailbox was deleted, have to disconnect\r\n"
MSG = b"Subject: hi\r\n\r\nbody\r\n"


async def pair(runtime: ServerRuntime) -> tuple[RawClient, RawClient]:
    port = runtime.port("imap")
    a, b = await RawClient.connect(port), await RawClient.connect(port)
    await a.login()
    await b.login()
    assert (await b.cmd(b"c", b"CREATE Work")).startswith(b"c OK [MAILBOXID (F")
    await b.cmd(b"p", b"APPEND Work {%d+}\r\n%b" % (len(MSG), MSG))
    assert (await a.cmd(b"s", b"SELECT Work")).endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    return a, b


async def assert_closed(c: RawClient) -> None:
    assert await c.line() == b""


async def test_next_command_gets_bye(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    assert await b.cmd(b"d", b"DELETE Work") == b"d OK DELETE completed\r\n"
    await a.send(b"n NOOP\r\n")
    assert await a.line() == BYE
    await assert_closed(a)
    # Other sessions are not affected.
    assert await b.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    await a.close()
    await b.close()


async def test_idle_gets_bye(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await a.send(b"i IDLE\r\n")
    assert await a.line() == b"+ idling\r\n"
    await b.cmd(b"d", b"DELETE Work")
    assert await a.line() == BYE
    await assert_closed(a)
    await a.close()
    await b.close()


async def test_examine_session_gets_bye_when_deleted_with_children(
        runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await b.cmd(b"c", b"CREATE Work/Sub")
    assert (await a.cmd(b"e", b"EXAMINE Work")).endswith(b"e OK [READ-ONLY] EXAMINE completed\r\n")
    # Work stays as a \Noselect placeholder for its child: still gone as a mailbox.
    assert await b.cmd(b"d", b"DELETE Work") == b"d OK DELETE completed\r\n"
    await a.send(b"f FETCH 1 (FLAGS)\r\n")
    data = await a.line()
    if data != BYE:  # the FETCH may answer from the session's map before the news arrives
        assert data == b"* 1 FETCH (FLAGS ())\r\n"
        assert await a.line() == BYE
    await assert_closed(a)
    await a.close()
    await b.close()


async def test_deleted_and_recreated_is_another_mailbox(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    await b.cmd(b"d", b"DELETE Work")
    await b.cmd(b"c", b"CREATE Work")
    await b.cmd(b"p", b"APPEND Work {%d+}\r\n%b" % (len(MSG), MSG))
    await a.send(b"n NOOP\r\n")
    assert await a.line() == BYE
    await assert_closed(a)
    await a.close()
    await b.close()


async def test_rename_keeps_the_session(runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    assert await b.cmd(b"r", b"RENAME Work Play") == b"r OK RENAME completed\r\n"
    assert (await b.cmd(b"c", b"CREATE Work")).startswith(b"c OK [MAILBOXID (F")
    assert await a.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    assert await a.cmd(b"f", b"UID FETCH 1 (UID FLAGS)") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\nf OK FETCH completed\r\n")
    # The session follows the mailbox to its new name: deleting "Play" is deleting its own
    # selected mailbox, which just leaves the selected state.
    assert await a.cmd(b"d", b"DELETE Play") == b"d OK DELETE completed\r\n"
    assert await a.cmd(b"f2", b"FETCH 1 (FLAGS)") == (
        b"f2 BAD FETCH not allowed in the authenticated state\r\n")
    await a.cmd(b"o", b"LOGOUT")
    await a.close()
    await b.close()


async def test_deleting_own_selected_mailbox_leaves_selected_state(
        runtime: ServerRuntime) -> None:
    a, b = await pair(runtime)
    # Names other than INBOX are case-sensitive: "work" is not the selected mailbox.
    assert await a.cmd(b"d", b"DELETE work") == b"d NO [NONEXISTENT] no mailbox named work\r\n"
    assert await a.cmd(b"n", b"NOOP") == b"n OK NOOP completed\r\n"
    assert await a.cmd(b"d2", b"DELETE Work") == b"d2 OK DELETE completed\r\n"
    assert await a.cmd(b"n2", b"NOOP") == b"n2 OK NOOP completed\r\n"
    assert await a.cmd(b"x", b"EXPUNGE") == (
        b"x BAD EXPUNGE not allowed in the authenticated state\r\n")
    await a.close()
    await b.close()


async def test_fetch_of_a_message_expunged_elsewhere_sends_no_made_up_structure(runtime: ServerRuntime) -> None:
    """Until the session is told (EXPUNGE may not be sent during FETCH), a message another
    session expunged has no BODYSTRUCTURE or ENVELOPE to show: the FETCH omits it rather than
    describe an empty body (imaptest: "BODYSTRUCTURE changed"); the next NOOP expunges it."""
    a, b = await pair(runtime)
    assert (await b.cmd(b"s", b"SELECT Work")).endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    await b.cmd(b"d", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert (await b.cmd(b"x", b"EXPUNGE")).endswith(b"x OK EXPUNGE completed\r\n")
    for items in (b"BODYSTRUCTURE", b"(ENVELOPE BODY)", b"(FLAGS BODY RFC822.SIZE)"):
        reply = await a.cmd(b"f", b"FETCH 1 " + items)
        assert b"* 1 FETCH" not in reply and reply.endswith(b"f OK FETCH completed\r\n"), reply
    assert (await a.cmd(b"n", b"NOOP")).startswith(b"* 1 EXPUNGE\r\n")
    await a.close()
    await b.close()

"""IMAP URLs for CATENATE (RFC 5092 imessagepart; rmail.server.imap.imapurl), as tables."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmail.server.imap.commands import Section
from rmail.server.imap.imapurl import MAX_URL, AuthUrl, BadUrl, ImapUrl, parse_auth_url, parse_url


@pytest.mark.parametrize("url, parsed", [
    ("/INBOX/;UID=20", ImapUrl("INBOX", None, 20, None, None)),
    ("/inbox;uidvalidity=385759045/;uid=20", ImapUrl("INBOX", 385759045, 20, None, None)),
    ("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER",
     ImapUrl("Drafts", 385759045, 20, Section((), "HEADER"), None)),
    ("/Drafts/;UID=20/;SECTION=1.MIME", ImapUrl("Drafts", None, 20, Section((1,), "MIME"), None)),
    ("/a/b%20c/;UID=3/;SECTION=2.3", ImapUrl("a/b c", None, 3, Section((2, 3)), None)),
    ("/Caf%C3%A9/;UID=1", ImapUrl("Café", None, 1, None, None)),
    ("/x/;UID=1/;SECTION=HEADER.FIELDS%20(From%20Subject)",
     ImapUrl("x", None, 1, Section((), "HEADER.FIELDS", ("From", "Subject")), None)),
    ("/x/;UID=1/;SECTION=1.TEXT/;PARTIAL=0.1024",
     ImapUrl("x", None, 1, Section((1,), "TEXT"), (0, 1024))),
    ("/x/;UID=1/;PARTIAL=100000", ImapUrl("x", None, 1, None, (100000, None))),
])
def test_parse(url: str, parsed: ImapUrl) -> None:
    assert parse_url(url) == parsed


@pytest.mark.parametrize("url", [
    "imap://alice@example.com/INBOX/;UID=1",   # absolute: not known to be this server
    "//example.com/INBOX/;UID=1",
    "INBOX/;UID=1",
    "/INBOX",                                  # a mailbox, not a message
    "/INBOX/;UID=0",
    "/INBOX/;UID=4294967296",
    "/INBOX;UIDVALIDITY=0/;UID=1",
    "/INBOX/;UID=1/;SECTION=",
    "/INBOX/;UID=1/;SECTION=MIME",             # MIME needs a part
    "/INBOX/;UID=1/;SECTION=BOGUS",
    "/INBOX/;UID=1/;SECTION=HEADER.FIELDS",    # without its field list
    "/INBOX/;UID=1/;SECTION=HEADER%20(From)",
    "/INBOX/;UID=1/;PARTIAL=0.0",
    "/INBOX/;UID=1/;URLAUTH=anonymous:internal:01234567890123456789012345678901",
    "/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z",
    "/%FF/;UID=1",                             # not UTF-8
    "/a%0Db/;UID=1",                           # a control character
    "/x/;UID=1" + "/;SECTION=1" + ".1" * 70,
    "/" + "a" * MAX_URL + "/;UID=1",
])
def test_refused(url: str) -> None:
    with pytest.raises(BadUrl):
        parse_url(url)


@given(st.text(max_size=200))
def test_only_badurl_escapes(url: str) -> None:
    try:
        parse_url(url)
    except BadUrl:
        pass


def test_parse_auth_url() -> None:
    url = parse_auth_url("imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"
                         ":INTERNAL:91354A473744909DE610943775F92038")
    assert url == AuthUrl(
        owner="joe@example.com", target=ImapUrl("INBOX", None, 20, Section((1, 2)), None),
        expire=None, access="submit+fred",
        rump="imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred",
        mechanism="INTERNAL", token="91354a473744909de610943775f92038")
    rump = parse_auth_url("imap://joe%40example.com@mail.example.net:993/a%20b;UIDVALIDITY=7/"
                          ";UID=3;EXPIRE=2030-01-02T03:04:05+01:00;URLAUTH=user+joe%40example.com")
    assert rump.owner == "joe@example.com" and rump.target == ImapUrl("a b", 7, 3, None, None)
    assert rump.expire == datetime(2030, 1, 2, 2, 4, 5, tzinfo=timezone.utc)
    assert rump.access == "user+joe@example.com" and rump.mechanism is None and rump.token is None
    assert parse_auth_url("imap://a@b/INBOX/;uid=1;urlauth=AuthUser").access == "authuser"


@pytest.mark.parametrize("url", [
    "/INBOX/;uid=1;urlauth=authuser",                                # not absolute
    "imap://example.com/INBOX/;uid=1;urlauth=authuser",              # no user
    "imap://a@b/INBOX/;uid=1",                                       # no URLAUTH
    "imap://a@b/INBOX/;uid=1;urlauth=",
    "imap://a@b/INBOX/;uid=1;urlauth=nobody",
    "imap://a@b/INBOX/;uid=1;urlauth=user+",
    "imap://a@b/INBOX/;uid=1;urlauth=authuser:internal:0123",        # token too short
    "imap://a@b/INBOX/;uid=1;urlauth=authuser:internal",
    "imap://a@b/INBOX/;uid=1;expire=tomorrow;urlauth=authuser",
    "imap://a@b/INBOX/;uid=1;expire=2030-01-01T00:00:00;urlauth=authuser",  # no zone
    "imap://a@b/INBOX;urlauth=authuser",                              # no message
])
def test_auth_url_refused(url: str) -> None:
    with pytest.raises(BadUrl):
        parse_auth_url(url)


@given(st.text(max_size=200))
def test_only_badurl_escapes_auth(url: str) -> None:
    try:
        parse_auth_url("imap://a@b/" + url)
    except BadUrl:
        pass

"""Search box syntax, folder ordering, account storage, autoconfig and TLS trust helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmail.client.accounts import AccountStore, default_api_port, default_ports, default_security, parse_autoconfig
from rmail.client.folders import sort_folders, special_use
from rmail.client.model import AccountSettings, Folder, SearchQuery, Security
from rmail.client.search import matches, parse_search
from rmail.client.tlstrust import normalize_fingerprint, pretty


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("from:alice", (("from", "alice"),)),
        ('subject:"quarterly report" invoice', (("subject", "quarterly report"), ("text", "invoice"))),
        ("TO:bob body:x", (("to", "bob"), ("body", "x"))),
        ("http://x.org", (("text", "http://x.org"),)),
        ('unbalanced "quote', (("text", "unbalanced"), ("text", '"quote'))),
    ],
)
def test_parse_search(text: str, terms: tuple) -> None:
    assert parse_search(text).terms == terms


@pytest.mark.parametrize("text", ["", "from:", "x" * 201, " ".join(["a"] * 11)])
def test_parse_search_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_search(text)


def test_matches_is_case_insensitive_and() -> None:
    q = SearchQuery((("from", "ALICE"), ("text", "report")))
    assert matches(q, {"from": "alice@x", "subject": "Report"})
    assert not matches(q, {"from": "bob@x", "subject": "Report"})


def test_folder_order_and_special_use() -> None:
    names = [("Zeta", ""), ("Trash", "\\Trash"), ("INBOX", ""), ("Alpha", ""), ("Sent", "\\Sent"), ("Drafts", "\\Drafts")]
    ordered = [f.name for f in sort_folders(Folder(n, "/", su) for n, su in names)]
    assert ordered == ["INBOX", "Drafts", "Sent", "Trash", "Alpha", "Zeta"]
    assert special_use({"\\HasNoChildren", "\\Junk"}, "Spam", "/") == "\\Junk"
    assert special_use(set(), "Sent Items", "/") == "\\Sent"
    assert special_use(set(), "Work/Trash", "/") == ""


def test_default_ports_follow_rmail_offsets() -> None:
    # A local rmail started by an unprivileged user adds 10000; as root (or with
    # CAP_NET_BIND_SERVICE) it keeps the standard ports, and so does the client.
    assert default_ports("localhost", Security.NONE, privileged=False) == (10143, 10587)
    assert default_ports("127.0.0.1", Security.TLS, privileged=False) == (10993, 10465)
    assert default_ports("localhost", Security.NONE, privileged=True) == (143, 587)
    assert default_api_port("::1", privileged=True) == 9002
    assert default_api_port("127.0.0.1", privileged=False) == 19002
    for privileged in (True, False):
        assert default_ports("mail.example.com", Security.STARTTLS, privileged=privileged) == (143, 587)
        assert default_api_port("mail.example.com", privileged=privileged) == 9002


def test_client_and_server_apply_one_port_rule(tmp_path) -> None:
    from rmail.server.config import load_config
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    for privileged in (True, False):
        server = load_config(config, is_root=privileged)
        assert default_ports("localhost", Security.NONE, privileged=privileged) == (server.ports.imap,
                                                                                     server.ports.submission)
        assert default_api_port("localhost", privileged=privileged) == server.ports.api
    assert default_security("::1") is Security.NONE
    assert default_security("mail.example.com") is Security.STARTTLS


def test_account_store_round_trip_without_password(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "sub" / "accounts.json")
    assert store.load() == []
    a = AccountSettings("localhost", 10143, 10587, Security.NONE, "alice@example.com", fingerprint="ab" * 32)
    b = AccountSettings("mail.x.org", 993, 465, Security.TLS, "bob@x.org")
    store.remember(a)
    store.remember(b)
    store.remember(a)
    assert store.load() == [a, b]
    text = store.path.read_text()
    assert "password" not in text.lower()
    store.path.write_text("{broken")
    assert store.load() == []


AUTOCONFIG = b"""<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <incomingServer type="pop3"><hostname>pop.example.com</hostname><port>995</port><socketType>SSL</socketType></incomingServer>
    <incomingServer type="imap"><hostname>mail.example.com</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication></incomingServer>
    <outgoingServer type="smtp"><hostname>mail.example.com</hostname><port>465</port><socketType>SSL</socketType></outgoingServer>
  </emailProvider>
</clientConfig>"""


def test_parse_autoconfig() -> None:
    auto = parse_autoconfig(AUTOCONFIG)
    assert (auto.imap_host, auto.imap_port, auto.smtp_port, auto.security) == ("mail.example.com", 993, 465, Security.TLS)


@pytest.mark.parametrize(
    "doc",
    [b"not xml", b"<clientConfig/>", AUTOCONFIG.replace(b'type="imap"', b'type="x"'), b"<x>" + b"a" * 70000 + b"</x>",
     b'<!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig/>'],
    ids=["not-xml", "empty", "no-imap", "too-big", "entities"],
)
def test_parse_autoconfig_rejects(doc: bytes) -> None:
    with pytest.raises(ValueError):
        parse_autoconfig(doc)


def test_fingerprint_forms() -> None:
    fp = "0123456789abcdef" * 4
    assert normalize_fingerprint(pretty(fp)) == fp
    assert normalize_fingerprint("SHA256:" + fp.upper()) == fp
    with pytest.raises(ValueError):
        normalize_fingerprint("abc")


def test_a_refused_connection_is_explained_in_words() -> None:
    import pytest

    from rmail.client.backend import ConnectionLost, ImapSmtpBackend
    from rmail.client.model import AccountSettings
    from tests.helpers.server import free_ports

    [port] = free_ports(1)          # nothing listens there
    backend = ImapSmtpBackend(AccountSettings("127.0.0.1", port, port, Security.NONE, "bob@example.com",
                                              timeout=5), "pw")
    with pytest.raises(ConnectionLost) as caught:
        backend.connect()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "nothing is listening" in message and "Errno" not in message

"""DKIM keys per domain (core.dkimkeys) and signing (RFC 6376, RFC 8463): files 0600, rotation
with a pending generation, and signatures that dkimpy itself verifies."""

from __future__ import annotations

import stat
from pathlib import Path

import aiosmtplib
import dkim
import pytest

from rmail.server.core.dkimkeys import DkimKeys, FileKeyStore, KeyState
from rmail.server.core.errors import AlreadyExists, InvalidInput, NotFound
from rmail.server.core.mailauth.signing import Signer
from rmail.server.core.tracefields import without_return_path
from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD

MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: signed\r\n"
           b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello,  world \r\n\r\n\r\n")


def dns_of(keys: DkimKeys, domain: str):
    """A dkimpy ``dnsfunc`` answering with the published records of ``domain``."""
    records = {k.dns_name.encode(): k.dns_value.encode() for g in keys.generations(domain) for k in g.keys}

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return records.get(name.rstrip(b"."))
    return lookup


def signatures(data: bytes) -> list[dict[bytes, bytes]]:
    d = dkim.DKIM(data)
    return [dkim.util.parse_tag_value(v) for k, v in d.headers if k.lower() == b"dkim-signature"]


def verify_each(data: bytes, dnsfunc) -> list[bool]:
    d = dkim.DKIM(data)
    out = []
    for i in range(len(signatures(data))):
        try:
            out.append(d.verify(i, dnsfunc=dnsfunc))
        except dkim.ValidationError:          # e.g. body hash mismatch
            out.append(False)
    return out


@pytest.fixture
def keys(tmp_path: Path) -> DkimKeys:
    return DkimKeys(FileKeyStore(tmp_path / "keys" / "dkim"))


def test_first_use_makes_an_active_generation_with_private_files(keys: DkimKeys, tmp_path: Path) -> None:
    assert keys.generations("example.com") == []
    [gen] = keys.ensure("Example.COM")
    assert gen.state is KeyState.ACTIVE
    assert [k.algorithm for k in gen.keys] == ["rsa", "ed25519"]
    assert gen.selectors == (f"{gen.name}-rsa", f"{gen.name}-ed")
    d = tmp_path / "keys" / "dkim" / "example.com"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    files = sorted(p.name for p in d.iterdir())
    assert files == sorted([f"{gen.name}-rsa.pem", f"{gen.name}-ed.pem", "state.json"])
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in d.iterdir())
    assert keys.signing_keys("example.com") == gen.keys
    rsa_key, ed_key = gen.keys
    assert rsa_key.dns_value.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")      # 2048-bit SubjectPublicKeyInfo
    assert ed_key.dns_value.startswith("v=DKIM1; k=ed25519; p=") and len(ed_key.public_key) == 44


def test_rotation_signs_with_the_old_generation_until_published(keys: DkimKeys) -> None:
    [first] = keys.ensure("example.com")
    pending = keys.rotate("example.com")
    assert pending.state is KeyState.PENDING and pending.name != first.name
    assert keys.signing_keys("example.com") == first.keys            # still the old one
    assert [g.name for g in keys.published("example.com")] == [first.name, pending.name]
    with pytest.raises(AlreadyExists):
        keys.rotate("example.com")
    with pytest.raises(InvalidInput):
        keys.publish("example.com", first.name)                       # active, not pending
    with pytest.raises(NotFound):
        keys.publish("example.com", "nosuch")
    keys.publish("example.com", pending.name)
    states = {g.name: g.state for g in keys.generations("example.com")}
    assert states == {first.name: KeyState.RETIRED, pending.name: KeyState.ACTIVE}
    assert keys.signing_keys("example.com")[0].selector == f"{pending.name}-rsa"
    assert [g.name for g in keys.published("example.com")] == [pending.name]


def test_another_process_rotating_is_seen(keys: DkimKeys, tmp_path: Path) -> None:
    keys.ensure("example.com")
    other = DkimKeys(FileKeyStore(tmp_path / "keys" / "dkim"))   # e.g. run.py dkim in another process
    new = other.rotate("example.com")
    other.publish("example.com", new.name)
    assert keys.signing_keys("example.com")[0].selector == f"{new.name}-rsa"


@pytest.mark.parametrize("bad", ["", "../etc", "a/b.example", "-x.example", "nodot", "a..b"])
def test_domain_names_are_checked_before_any_path(keys: DkimKeys, bad: str) -> None:
    with pytest.raises(InvalidInput):
        keys.ensure(bad)


def test_both_signatures_verify_with_dkimpy(keys: DkimKeys) -> None:
    signed = Signer(keys).sign_blocking(MESSAGE, "example.com")
    assert signed.endswith(MESSAGE)
    sigs = signatures(signed)
    assert [s[b"a"] for s in sigs] == [b"rsa-sha256", b"ed25519-sha256"]
    assert all(s[b"d"] == b"example.com" and s[b"c"] == b"relaxed/relaxed" for s in sigs)
    signed_fields = sigs[0][b"h"].split(b":")
    assert [f.strip() for f in signed_fields].count(b"from") == 2       # oversigned: no From can be added
    assert verify_each(signed, dns_of(keys, "example.com")) == [True, True]
    tampered = signed.replace(b"Hello,", b"Hullo,")
    assert verify_each(tampered, dns_of(keys, "example.com")) == [False, False]


def test_invalid_domains_are_never_signed(keys: DkimKeys) -> None:
    assert Signer(keys).sign_blocking(MESSAGE, "rmail-diagnose.invalid") is MESSAGE
    assert keys.generations("rmail-diagnose.invalid") == []


async def test_submitted_mail_is_signed_once_for_local_and_remote_recipients(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("submission")) as client:
        await client.login("alice@example.com", PASSWORD)
        await client.sendmail("alice@example.com", ["bob@example.com", "dave@remote.example.org"], MESSAGE)
    [entry] = await runtime.queue.list()
    bob = await runtime.accounts.get_user("bob@example.com")
    [meta] = await runtime.store.list_messages((await runtime.store.get_mailbox(bob.id, "INBOX")).id)
    # One blob for the local copy and the queue entry (one transaction); what is relayed is it
    # without the Return-Path of the local delivery.
    assert entry.blob_id == meta.blob_id
    local = await runtime.store.read_message(meta.blob_id)
    queued = without_return_path(local)
    assert local == b"Return-Path: <alice@example.com>\r\n" + queued
    assert queued.startswith(b"DKIM-Signature: ")
    assert verify_each(queued, dns_of(runtime.dkim, "example.com")) == [True, True]


async def test_port_25_mail_from_strangers_is_not_signed(runtime: ServerRuntime) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=runtime.port("smtp")) as client:
        await client.sendmail("carol@example.net", ["bob@example.com"], MESSAGE)
    bob = await runtime.accounts.get_user("bob@example.com")
    [meta] = await runtime.store.list_messages((await runtime.store.get_mailbox(bob.id, "INBOX")).id)
    assert b"DKIM-Signature" not in await runtime.store.read_message(meta.blob_id)
    assert runtime.dkim.generations("example.com") == []


def test_arc_chain_verifies_and_breaks(keys: DkimKeys) -> None:
    from rmail.server.core.mailauth.dkim import verify_arc
    [rsa, _] = keys.signing_keys("forwarder.example")
    records = {rsa.dns_name: [rsa.dns_value.encode()]}

    def txt(name: str) -> list[bytes]:
        return records.get(name, [])
    received = b"Authentication-Results: fwd.example; spf=pass smtp.mailfrom=example.com\r\n" + MESSAGE
    sealed = b"".join(dkim.arc_sign(received, rsa.selector.encode(), b"forwarder.example", rsa.signing_key,
                                    b"fwd.example")) + received
    assert verify_arc(MESSAGE, txt).result == "none"
    ok = verify_arc(sealed, txt)
    assert (ok.result, ok.instances) == ("pass", 1), ok.reason
    assert verify_arc(sealed.replace(b"Hello,", b"Hullo,"), txt).result == "fail"
    assert verify_arc(sealed, lambda name: []).result == "fail"            # key gone
    many = sealed.replace(b"i=1", b"i=51")
    assert verify_arc(many, txt).reason == "more than 50 ARC sets"

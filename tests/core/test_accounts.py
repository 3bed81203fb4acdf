"""Users and domains: creation, default mailboxes, passwords, authentication."""

from __future__ import annotations

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.errors import (AlreadyExists, AuthenticationFailed, InvalidInput, NotFound,
                                      PermissionDenied)
from rmail.server.core.storage import MailStore
from tests.helpers.stores import stored_blobs


async def test_add_user_creates_domain_and_default_mailboxes(accounts: Accounts, store: MailStore) -> None:
    alice = await accounts.add_user("alice@Example.COM", "pw")
    assert alice.address == "alice@example.com"
    assert await accounts.is_local_domain("example.com")
    boxes = {b.name: b.special_use for b in await store.list_mailboxes(alice.id)}
    assert boxes == {"INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
                     "Junk": "\\Junk", "Archive": "\\Archive"}
    assert await accounts.list_domains() == [("example.com", 1)]


async def test_duplicate_user_case_insensitive(accounts: Accounts) -> None:
    await accounts.add_user("alice@example.com", "pw")
    with pytest.raises(AlreadyExists):
        await accounts.add_user("ALICE@example.com", "pw")


@pytest.mark.parametrize("address", ["alice", "@example.com", "alice@", "a b@example.com", "alice@nodot",
                                     "x" * 65 + "@example.com", "alice@exa..mple.com"])
async def test_bad_addresses(accounts: Accounts, address: str) -> None:
    with pytest.raises(InvalidInput):
        await accounts.add_user(address, "pw")


async def test_password_limits(accounts: Accounts) -> None:
    with pytest.raises(InvalidInput, match="72 bytes"):
        await accounts.add_user("a@example.com", "é" * 37)  # 74 bytes in UTF-8
    with pytest.raises(InvalidInput):
        await accounts.add_user("a@example.com", "")
    await accounts.add_user("a@example.com", "x" * 72)


async def test_authenticate(accounts: Accounts) -> None:
    await accounts.add_user("alice@example.com", "right")
    assert (await accounts.authenticate("Alice@example.com", "right")).address == "alice@example.com"
    for user, pw in [("alice@example.com", "wrong"), ("nobody@example.com", "right"), ("garbage", "x"),
                     ("alice@example.com", "x" * 100)]:
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate(user, pw)


async def test_passwd_admin_remove(backend, accounts: Accounts, store: MailStore) -> None:  # noqa: ANN001
    alice = await accounts.add_user("alice@example.com", "one")
    await accounts.set_password("alice@example.com", "two")
    await accounts.authenticate("alice@example.com", "two")
    assert (await accounts.set_admin("alice@example.com", True)).admin
    assert (await accounts.get_user("alice@example.com")).admin
    inbox = await store.get_mailbox(alice.id, "INBOX")
    await store.append(inbox.id, b"Subject: x\r\n\r\nbody\r\n")
    await accounts.remove_user("alice@example.com")
    with pytest.raises(NotFound):
        await accounts.get_user("alice@example.com")
    assert await stored_blobs(backend) == set()


async def test_domains(accounts: Accounts) -> None:
    await accounts.add_domain("Example.org")
    assert await accounts.is_local_domain("example.org")
    with pytest.raises(AlreadyExists):
        await accounts.add_domain("example.org")
    await accounts.add_user("a@example.org", "pw")
    with pytest.raises(PermissionDenied):
        await accounts.remove_domain("example.org")
    await accounts.remove_user("a@example.org")
    await accounts.remove_domain("example.org")
    assert not await accounts.is_local_domain("example.org")

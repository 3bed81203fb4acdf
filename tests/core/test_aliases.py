"""Alias rules: ordering, exact-user priority, catch-all, case, invalid and dangerous patterns."""

from __future__ import annotations

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.aliases import Aliases, compile_pattern
from rmail.server.core.errors import AlreadyExists, InvalidInput, NotFound


@pytest.fixture
async def domain(accounts: Accounts) -> None:
    await accounts.add_user("alice@example.com", "pw")
    await accounts.add_user("bob@example.com", "pw")


async def where(aliases: Aliases, address: str) -> str | None:
    res = await aliases.resolve(address)
    return res.account.address if res.account else None


async def test_exact_user_beats_catch_all(aliases: Aliases, domain: None) -> None:
    await aliases.add("example.com", ".*", "alice")
    assert await where(aliases, "bob@example.com") == "bob@example.com"
    assert await where(aliases, "anyone@example.com") == "alice@example.com"


async def test_declaration_order_first_match_wins(aliases: Aliases, domain: None) -> None:
    await aliases.add("example.com", "sales-.*", "alice")
    await aliases.add("example.com", "sales-eu", "bob")
    await aliases.add("example.com", ".*", "bob@example.com")
    assert await where(aliases, "sales-eu@example.com") == "alice@example.com"
    await aliases.move("example.com", "sales-eu", 1)
    assert [r.pattern for r in await aliases.list("example.com")] == ["sales-eu", "sales-.*", ".*"]
    assert await where(aliases, "sales-eu@example.com") == "bob@example.com"
    res = await aliases.resolve("sales-eu@example.com")
    assert res.rule is not None and res.rule.position == 1 and "sales-eu" in res.describe()


async def test_full_match_and_case(aliases: Aliases, domain: None) -> None:
    await aliases.add("example.com", "sales", "alice")
    assert await where(aliases, "SALES@example.com") == "alice@example.com"
    assert await where(aliases, "sales-x@example.com") is None
    assert await where(aliases, "xsales@example.com") is None
    assert await where(aliases, "ALICE@EXAMPLE.COM") == "alice@example.com"


async def test_remove_and_errors(aliases: Aliases, domain: None) -> None:
    await aliases.add("example.com", "x-.*", "alice")
    with pytest.raises(AlreadyExists):
        await aliases.add("example.com", "x-.*", "bob")
    await aliases.remove("example.com", "x-.*")
    with pytest.raises(NotFound):
        await aliases.remove("example.com", "x-.*")
    with pytest.raises(NotFound):
        await aliases.add("nowhere.org", ".*", "alice")
    with pytest.raises(InvalidInput, match="not an existing user"):
        await aliases.add("example.com", ".*", "carol")
    with pytest.raises(InvalidInput, match="not in domain"):
        await aliases.add("example.com", ".*", "alice@other.org")


async def test_rules_go_with_their_target(aliases: Aliases, accounts: Accounts, domain: None) -> None:
    await aliases.add("example.com", "b-.*", "bob")
    await accounts.remove_user("bob@example.com")
    assert await aliases.list("example.com") == []


async def test_non_local_domain(aliases: Aliases, domain: None) -> None:
    res = await aliases.resolve("x@elsewhere.org")
    assert not res.local_domain and res.account is None


@pytest.mark.parametrize("pattern", ["(a+)+", "(a*)*", "(.*a){20}", "(a|aa)+", "(x+x+)+y", "([a-z]+)*$"])
def test_dangerous_patterns_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput, match="catastrophically"):
        compile_pattern(pattern)


@pytest.mark.parametrize("pattern", ["(", "a{2,1}", r"(a)\1", "(?=a)", "", "x" * 300, "a\nb"])
def test_invalid_patterns_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput):
        compile_pattern(pattern)


@pytest.mark.parametrize("pattern", ["sales-.*", ".*", "info|contact", "[a-z]+\\.[a-z]+", "(sales|support)-.+",
                                     "team-(eu|us)"])
def test_good_patterns(pattern: str) -> None:
    compile_pattern(pattern)


def test_matching_time_is_linear() -> None:
    # RE2 runs in linear time: a long hostile local part against a broad pattern still matches fast.
    regex = compile_pattern("[a-z]*[a-z]*[a-z]*b")
    assert regex.fullmatch("a" * 10000) is None

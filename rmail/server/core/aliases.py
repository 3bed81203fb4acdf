"""Per-domain alias rules: regular expressions over the local part, routing to local users.

Resolution (SPEC Part 1): an exact user wins; otherwise the rules of the domain are tried in
declaration order, each a full match on the local part (case-insensitive), and the first match
routes to its target user. RFC 5321 §4.5.1 requires every domain to accept ``postmaster``
(case-insensitive), and ``postmaster`` without a domain: unless a user or a rule takes it,
it goes to the domain's first administrator, or its first user when it has no administrator
(``<postmaster>`` alone: the first local domain's postmaster). Patterns are compiled with RE2, whose matching time is linear in
the input, so no pattern can hang delivery; patterns with nested quantifiers, which would
backtrack catastrophically on other engines, are refused too so rules stay portable.
"""

from __future__ import annotations

import builtins         # builtins.list: Aliases has a list() method
import re
from dataclasses import dataclass
from functools import lru_cache

import re2

from .accounts import Accounts, normalize_domain
from .errors import InvalidInput, NotFound
from .model import Account, Address, AliasRule

MAX_PATTERN_LENGTH = 256
#: RFC 5321 §4.5.1: the local part every domain must accept (compared case-insensitively).
POSTMASTER = "postmaster"
#: RE2 program memory cap: bounds compile cost of huge repetitions like a{1000}{1000}.
RE2_MAX_MEM = 1 << 20

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = RE2_MAX_MEM

# A quantified group whose body is itself quantified or alternates: (a+)+, (a*)*, (a|aa)+, (.*a){3,}
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*}]|\|)(?:[^()\\]|\\.)*\)[+*{]")


def compile_pattern(pattern: str) -> re2._Regexp:
    """Validate and compile an alias pattern.

    Raises:
        InvalidInput: empty, too long, not valid RE2 syntax, or prone to catastrophic backtracking.
    """
    if not pattern:
        raise InvalidInput("alias pattern may not be empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidInput(f"alias pattern is longer than {MAX_PATTERN_LENGTH} characters")
    if any(ord(c) < 0x20 for c in pattern):
        raise InvalidInput("alias pattern may not contain control characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise InvalidInput(f"alias pattern {pattern!r} nests quantifiers and could backtrack catastrophically;"
                           " rewrite it without a repeated group that itself repeats, e.g. 'a+' for '(a+)+'")
    return _compile(pattern)


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re2._Regexp:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidInput(f"invalid alias pattern {pattern!r}: {detail}") from None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where mail for an address goes."""

    address: Address
    local_domain: bool
    account: Account | None        #: the user the mail is delivered to, if any
    rule: AliasRule | None         #: the alias rule that matched (None for an exact user)
    postmaster: bool = False       #: routed by the RFC 5321 §4.5.1 postmaster default

    def describe(self) -> str:
        if not self.local_domain:
            return f"{self.address}: {self.address.domain} is not a local domain (mail is relayed, if allowed)"
        if self.account is None:
            return f"{self.address}: no user and no alias matches; mail is refused (550 5.1.1)"
        if self.postmaster:
            return (f"{self.address}: postmaster (RFC 5321 §4.5.1; no user or alias takes it) → "
                    f"{self.account.address}, the domain's first administrator or user")
        if self.rule is None:
            return f"{self.address}: delivered to user {self.account.address}"
        return (f"{self.address}: alias rule #{self.rule.position} {self.rule.pattern!r} → "
                f"{self.account.address}")


class Aliases:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.directory = accounts.directory

    async def list(self, domain: str) -> list[AliasRule]:
        return await self.directory.alias_rules(normalize_domain(domain))

    def _target_local(self, domain: str, target: str) -> str:
        if "@" in target:
            addr = Address.parse(target)
            if addr.domain != domain:
                raise InvalidInput(f"alias target {target} is not in domain {domain}")
            return addr.local
        if not target or len(target) > 64:
            raise InvalidInput("alias target must be a user's local part or address")
        return target

    async def add(self, domain: str, pattern: str, target: str) -> AliasRule:
        """Append a rule at the end of the domain's list.

        Raises:
            NotFound: no such domain.  InvalidInput: bad pattern or target not an existing user.
            AlreadyExists: the pattern is already a rule of the domain.
        """
        name = normalize_domain(domain)
        compile_pattern(pattern)
        return await self.directory.add_alias(name, pattern, self._target_local(name, target))

    async def remove(self, domain: str, pattern: str) -> None:
        await self.directory.remove_alias(normalize_domain(domain), pattern)

    async def move(self, domain: str, pattern: str, position: int) -> builtins.list[AliasRule]:
        """Move a rule to ``position`` (1-based) in the declaration order."""
        return await self.directory.move_alias(normalize_domain(domain), pattern, position)

    async def resolve(self, address: str | Address) -> Resolution:
        """Where mail for ``address`` goes: exact user, else the first matching rule."""
        addr = address if isinstance(address, Address) else Address.parse(address)
        found = await self.directory.lookup(addr)
        if not found.local_domain:
            return Resolution(addr, False, None, None)
        if found.account is not None:
            return Resolution(addr, True, found.account, None)
        for rule, target in found.rules:
            if _compile(rule.pattern).fullmatch(addr.local):
                return Resolution(addr, True, target, rule)
        if addr.local.lower() == POSTMASTER:
            return Resolution(addr, True, found.postmaster, None, postmaster=found.postmaster is not None)
        return Resolution(addr, True, None, None)

    async def resolve_bare_postmaster(self) -> Resolution:
        """``RCPT TO:<postmaster>`` with no domain (RFC 5321 §4.5.1): the first local
        domain's postmaster.

        Raises:
            NotFound: there is no local domain yet.
        """
        domain = await self.directory.first_domain()
        if domain is None:
            raise NotFound("no local domain has a postmaster yet")
        return await self.resolve(Address(POSTMASTER, domain))

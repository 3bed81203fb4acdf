"""Password-guessing defence shared by SMTP AUTH, IMAP LOGIN/AUTHENTICATE and the REST login.

Every password check runs inside ``AuthGuard.attempt()``. The guard answers four threats:

- **Guessing one account from one address.** Failures count per (address, user name) *pair*;
  ``limits.auth_pair_failures`` of them lock that pair for ``limits.auth_lockout_seconds``. A
  success clears only that pair, so a guesser who also holds a valid account gains nothing by
  logging into it between guesses (issue 11: it used to reset the whole address).
- **Spraying many accounts from one address.** Failures also count per address over all user
  names; ``limits.auth_failures`` lock the address.
- **Distributed guessing of one account** (a botnet, each address below its own limit).
  Failures count per user name over all addresses; ``limits.auth_account_failures`` lock the
  name for ``limits.auth_account_lockout_seconds``.
- **Parallel connections multiplying the budget** (40 connections sent 43 guesses past a limit
  of 10). A check in flight is *reserved* against every counter it could raise: a new check
  starts only while ``failures + checks in flight < limit`` for each of them, else it waits
  for an in-flight one to finish. And at most ``limits.auth_concurrent`` checks run per
  address, so one address cannot occupy every bcrypt thread. The budget is exact: no more
  checks than the limit, whatever the parallelism.

Why this does not lock real users out: the address and account locks do not apply to a
*known* pair, one that logged in successfully within ``KNOWN_SECONDS``. One user behind an
office NAT who mistypes in a loop locks only their own pair (and, since a locked pair is not
checked, adds at most ``auth_pair_failures`` per lockout period to the address count); an
attacker spraying from that address, or a botnet hammering ``bob``, locks out only logins
from addresses that have not recently proved themselves for that account. Refused attempts
are not counted, so a lock ends on time however hard it is hammered, and a lockout is never
longer than its ``*_lockout_seconds``. (Dovecot's ``auth_penalty`` and the "known device"
rule of large mail providers are the precedents.)

Counts decay: each counter leaks ``limit`` failures per lockout period, so failures spread
thinner than the limit never lock, and a lock resets its counter. At most
``limit × (1 + 3600 / lockout_seconds)`` checks per hour get through any one counter.

IPv6 clients are counted per /64 (what one subscriber usually gets); IPv4-mapped IPv6 as IPv4.

Every failed password check is one ``rmail.auth`` WARNING line in a stable format for
fail2ban (``contrib/fail2ban``); so is a login refused by a lock (``reason=locked``, at most
one a minute per lock, since refusals cost nothing and may come fast); a lock that starts is
one more line.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Callable

from .errors import AuthenticationFailed, TemporaryFailure
from .events import AuthFailed, EventBus

__all__ = ["AuthGuard", "GuardLimits", "LoginAttempt", "LoginLocked", "address_key", "log_quote"]

log = logging.getLogger("rmail.auth")

#: Counters remembered per table (pairs, addresses, user names). An attacker rotating names or
#: addresses cannot grow memory past this (~200 bytes a record); the least recently touched
#: record goes first.
MAX_TRACKED = 20000
#: A pair that logged in successfully this recently is exempt from address and account locks.
KNOWN_SECONDS = 30 * 24 * 3600
#: Known pairs remembered; only successful logins (valid credentials) add to this table.
MAX_KNOWN = 50000
#: User names longer than any address (RFC 5321 §4.5.3.1.3) are counted by this prefix.
MAX_NAME = 320
#: Characters of a user name written to the log.
LOG_NAME = 200
#: A refused login (under a lock) is logged at most this often per lock.
REFUSAL_LOG_SECONDS = 60
#: Float slack when comparing leaked counts with integer limits.
_EPSILON = 1e-9


class LoginLocked(TemporaryFailure):
    """A lock covers this login; the password was not checked.

    ``retry_after`` is the number of seconds until the lock ends (HTTP ``Retry-After``).
    """

    def __init__(self, retry_after: float, scope: str) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after
        self.scope = scope


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """The bounds, from ``[limits]`` in rmail.toml (see ``Limits`` in config.py)."""

    pair_failures: int = 5
    address_failures: int = 20
    account_failures: int = 50
    lockout_seconds: float = 300
    account_lockout_seconds: float = 600
    concurrent: int = 4
    base_delay: float = 0.5          #: the first failure's answer waits this long; doubles after
    max_delay: float = 8.0


@dataclass(slots=True)
class _Counter:
    level: float = 0.0          #: failures, leaking ``limit`` per period
    stamp: float = 0.0          #: when ``level`` was last brought up to date
    locked_until: float = 0.0
    in_flight: int = 0          #: checks running that may add a failure here
    refusal_logged: float = -math.inf   #: when a refusal under this lock was last logged


class _Tier:
    """One kind of counter (pair, address or account): its limit, period and table."""

    def __init__(self, scope: str, limit: int, seconds: float) -> None:
        self.scope = scope
        self.limit = limit
        self.seconds = seconds
        self.table: collections.OrderedDict[object, _Counter] = collections.OrderedDict()

    def get(self, key: object, now: float, *, create: bool) -> _Counter | None:
        c = self.table.get(key)
        if c is None:
            if not create:
                return None
            c = self.table[key] = _Counter(stamp=now)
            while len(self.table) > MAX_TRACKED:
                self.table.popitem(last=False)
        else:
            self.table.move_to_end(key)
        self._leak(c, now)
        return c

    def _leak(self, c: _Counter, now: float) -> None:
        if c.level:
            c.level = max(0.0, c.level - (now - c.stamp) * self.limit / self.seconds)
        c.stamp = now

    def locked_for(self, c: _Counter, now: float) -> float:
        return max(0.0, c.locked_until - now)

    def has_room(self, c: _Counter) -> bool:
        # Every check in flight may still fail: count it as failed until it is known. Room
        # means that even if all of them fail, no lock has started yet.
        return c.level + c.in_flight <= self.limit - 1 + _EPSILON

    def fail(self, c: _Counter, now: float) -> bool:
        """Add a failure; True when it starts a lock (the counter then starts afresh).

        The ``limit``-th failure in a burst locks even if the first ones have leaked a little.
        """
        self._leak(c, now)
        c.level += 1
        if c.level > self.limit - 1 + _EPSILON:
            c.locked_until = now + self.seconds
            c.level = 0.0
            return True
        return False


def address_key(peer: str) -> str:
    """What an address is counted as: IPv4 as is, IPv6 by its /64, mapped IPv4 as IPv4."""
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def user_key(username: str) -> str:
    """User names compare case-insensitively (as accounts do) and ignore surrounding blanks."""
    return username.strip().lower()[:MAX_NAME]


def log_quote(text: str) -> str:
    """``text`` as a double-quoted string of printable ASCII.

    A hostile user name can then neither end the field (``"`` and ``\\`` are escaped) nor the
    line (every control, non-ASCII or line-separator character becomes ``\\xNN``/``\\uNNNN``),
    so it cannot forge a field or a log line that fail2ban would read.
    """
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class AuthGuard:
    """Failed-login accounting, lockouts and in-flight limits (see the module docstring)."""

    def __init__(self, limits: GuardLimits = GuardLimits(), *, bus: EventBus | None = None,
                 on_lockout: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.bus = bus
        #: Called with the user name when a pair or account lock starts (the credential cache
        #: forgets that user, so a lock is never bypassed by a cached password).
        self.on_lockout = on_lockout
        self._clock = clock
        self._pairs = _Tier("pair", limits.pair_failures, limits.lockout_seconds)
        self._addresses = _Tier("address", limits.address_failures, limits.lockout_seconds)
        self._accounts = _Tier("account", limits.account_failures, limits.account_lockout_seconds)
        self._known: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        # Futures of attempts waiting for a check in flight to finish, by address and by user
        # name: a finished check wakes only the waiters it may have made room for.
        self._waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}

    # -- the protocol adapters' entry point ----------------------------------------------------

    def attempt(self, protocol: str, peer: str, username: str) -> LoginAttempt:
        """``async with guard.attempt(...)`` around one password check.

        Entering waits for room (see the module docstring) or raises ``LoginLocked``. Leaving
        with ``AuthenticationFailed`` records a failure, logs it, waits the failure delay and
        lets the exception go on; leaving normally records a success; any other exception
        records nothing.
        """
        return LoginAttempt(self, protocol, peer, username)

    # -- queries -------------------------------------------------------------------------------

    def locked_for(self, peer: str, username: str | None = None) -> float:
        """Seconds until a login from ``peer`` (as ``username``, if given) may be checked."""
        now = self._clock()
        addr = address_key(peer)
        if username is None:
            c = self._addresses.get(addr, now, create=False)
            return self._addresses.locked_for(c, now) if c else 0.0
        user = user_key(username)
        return max((t.locked_for(c, now) for t, c in self._counters(addr, user, now, create=False)
                    if c is not None), default=0.0)

    def is_known(self, peer: str, username: str) -> bool:
        return self._is_known(address_key(peer), user_key(username), self._clock())

    # -- internals -----------------------------------------------------------------------------

    def _is_known(self, addr: str, user: str, now: float) -> bool:
        until = self._known.get((addr, user))
        return until is not None and until > now

    def _counters(self, addr: str, user: str, now: float, *, create: bool,
                  known: bool | None = None) -> list[tuple[_Tier, _Counter | None]]:
        """The counters that apply to this login: the pair's always, the address's and the
        user name's unless the pair is known."""
        if known is None:
            known = self._is_known(addr, user, now)
        out: list[tuple[_Tier, _Counter | None]] = [(self._pairs, self._pairs.get((addr, user), now, create=create))]
        if not known:
            out.append((self._addresses, self._addresses.get(addr, now, create=create)))
            out.append((self._accounts, self._accounts.get(user, now, create=create)))
        return out

    async def _admit(self, attempt: LoginAttempt) -> None:
        addr, user = attempt.addr, attempt.user
        while True:
            now = self._clock()
            known = self._is_known(addr, user, now)
            # Look, do not create: a refused attempt must leave nothing behind, or a stream of
            # cheap refusals with fresh names would push real records (locks) out of the tables.
            applying = self._counters(addr, user, now, create=False, known=known)
            locks = [(t.locked_for(c, now), t.scope, c) for t, c in applying
                     if c is not None and c.locked_until > now]
            if locks:
                seconds, scope, c = max(locks, key=lambda lock: lock[0])
                # Refusals cost nothing, so a client may send them fast: log one a minute per
                # lock, enough for an operator (fail2ban counts only checked failures).
                if now - c.refusal_logged >= REFUSAL_LOG_SECONDS:
                    c.refusal_logged = now
                    self._log_failure(attempt, "locked")
                raise LoginLocked(seconds, scope)
            # All three counters are reserved even when the pair is known: its failure still
            # counts against the address and the account.
            pair = self._pairs.get((addr, user), now, create=True)
            address = self._addresses.get(addr, now, create=True)
            account = self._accounts.get(user, now, create=True)
            assert pair is not None and address is not None and account is not None
            checked = [(self._pairs, pair)] if known else \
                [(self._pairs, pair), (self._addresses, address), (self._accounts, account)]
            if address.in_flight < self.limits.concurrent and all(t.has_room(c) for t, c in checked):
                for c in (pair, address, account):
                    c.in_flight += 1
                attempt.counters = (pair, address, account)
                return
            await self._wait(addr, user)

    async def _wait(self, addr: str, user: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = (("a", addr), ("u", user))
        for key in keys:
            self._waiters.setdefault(key, set()).add(fut)
        try:
            await fut
        finally:
            for key in keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(fut)
                    if not waiting:
                        del self._waiters[key]

    def _release(self, attempt: LoginAttempt) -> None:
        for c in attempt.counters:
            c.in_flight -= 1
        attempt.counters = ()
        for key in (("a", attempt.addr), ("u", attempt.user)):
            for fut in self._waiters.get(key, ()):
                if not fut.done():
                    fut.set_result(None)

    def _succeeded(self, attempt: LoginAttempt) -> None:
        now = self._clock()
        pair_key = (attempt.addr, attempt.user)
        # Only the pair starts afresh: a success proves nothing about other names or addresses.
        self._pairs.table.pop(pair_key, None)
        self._known.pop(pair_key, None)
        self._known[pair_key] = now + KNOWN_SECONDS
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)

    def _failed(self, attempt: LoginAttempt, reason: str) -> float:
        """Record a checked failure; returns the delay before answering it."""
        now = self._clock()
        pair, address, account = attempt.counters
        levels = []
        locked: list[_Tier] = []
        for tier, c in ((self._pairs, pair), (self._addresses, address), (self._accounts, account)):
            if tier.fail(c, now):
                locked.append(tier)
                levels.append(float(tier.limit))
            elif tier is not self._accounts:
                # The delay grows with what this client did (pair, address), not with what
                # others did to the account.
                levels.append(c.level)
        self._log_failure(attempt, reason)
        for tier in locked:
            self._log_lockout(tier, attempt)
            if tier is not self._addresses and self.on_lockout is not None:
                self.on_lockout(attempt.user)
        if not self.limits.base_delay:
            return 0.0
        n = max(1, math.ceil(max(levels)))
        return min(self.limits.max_delay, self.limits.base_delay * 2.0 ** (n - 1))

    def _log_failure(self, attempt: LoginAttempt, reason: str) -> None:
        log.warning("auth failed: protocol=%s address=%s user=%s reason=%s", attempt.protocol, attempt.peer,
                    log_quote(attempt.username[:LOG_NAME]), reason)
        if self.bus is not None:
            self.bus.publish(AuthFailed(attempt.protocol, attempt.peer, attempt.username[:LOG_NAME]))

    def _log_lockout(self, tier: _Tier, attempt: LoginAttempt) -> None:
        if tier is self._addresses:
            subject = f"address={attempt.addr}"
        elif tier is self._accounts:
            subject = f"user={log_quote(attempt.user[:LOG_NAME])} last_address={attempt.peer}"
        else:
            subject = f"address={attempt.addr} user={log_quote(attempt.user[:LOG_NAME])}"
        log.warning("auth lockout: scope=%s %s failures=%d seconds=%d", tier.scope, subject, tier.limit,
                    tier.seconds)


class LoginAttempt:
    """One password check under the guard; see ``AuthGuard.attempt``."""

    def __init__(self, guard: AuthGuard, protocol: str, peer: str, username: str) -> None:
        self.guard = guard
        self.protocol = protocol
        self.peer = peer
        self.username = username
        self.addr = address_key(peer)
        self.user = user_key(username)
        #: Logged with a failure; a caller may set a more precise one before raising.
        self.reason = "bad-password"
        self.counters: tuple[_Counter, ...] = ()

    async def __aenter__(self) -> LoginAttempt:
        await self.guard._admit(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if not self.counters:
            return
        if exc_type is None:
            self.guard._succeeded(self)
            self.guard._release(self)
            return
        if not isinstance(exc, AuthenticationFailed):
            self.guard._release(self)       # not a verdict on the password: nothing counted
            return
        reason = getattr(exc, "reason", None) or self.reason
        delay = self.guard._failed(self, reason)
        self.guard._release(self)
        if delay:
            # Slows each connection's guessing; the slot is already free, so a failing client
            # does not hold up others behind the same address.
            await asyncio.sleep(delay)

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
  checks than the limit, whatever the parallelism (on one node; several: see below).

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
one a minute per lock and node, since refusals cost nothing and may come fast); a lock that
starts is one more line, on the node whose failure started it.

**Several nodes on one store** (PostgreSQL, behind a load balancer). The three counters and
their locks live in the store's failure ledger (``Backend.login_failures``,
storage/throttle.py), so guesses spread over nodes meet the limits that guesses at one node
meet, a lock started through one node refuses on every node, and a success through any node
clears its pair everywhere. Known pairs are shared too, because it is nearly free: the one
look a login makes anyway also says whether its pair is known, and a pair's mark is written
again at most once a day (``KNOWN_REFRESH_SECONDS``), after the login was answered. Without
that, a device known through node A would be refused by node B during the very attack (a
botnet hammering its account) the exemption exists for. (The embedded store's ledger lives
in this process, core/sqlite/throttle.py: one process serves that store.)

Per node by nature: checks in flight, their reservations and the cap on concurrent checks
per address, which guard this node's password-checking threads. So the budget is exact per
node; checks that start on k nodes at the same instant may pass a limit by the checks then
in flight on the other nodes, once, before the lock that every node then sees. The guard's
own tables stay as the working copy of the ledger: each counter carries the ledger's version
of it, so an answer overtaken by a fresher one (they may arrive out of order) is ignored.

Cost and failure: a login asks the ledger once, before its check (one round trip for the
three counters and the known mark); a refusal under a pair lock that the ledger confirmed
within ``RELOOK_SECONDS`` asks nothing. A failure is recorded before it is answered; a
success writes only when there is something to change (failures to clear, a day-old known
mark), in the background (``settle()`` waits for those writes). A ledger call that fails or
takes longer than ``LEDGER_TIMEOUT`` falls back to this node's own counters for
``LEDGER_PAUSE`` seconds (one WARNING a minute at most): a slow database never makes a login
hang or fail, it only makes the counts per node for a while.
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
from typing import Any, Awaitable, Callable, TypeVar

from .errors import AuthenticationFailed, TemporaryFailure
from .events import AuthFailed, EventBus
from .storage.throttle import Bucket, FailureCount, FailureLedger, Standing

__all__ = ["AuthGuard", "GuardLimits", "LoginAttempt", "LoginLocked", "address_key", "log_quote"]

log = logging.getLogger("rmail.auth")
T = TypeVar("T")

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
#: A known pair's mark in the ledger is written again once it is this old, not on every login.
KNOWN_REFRESH_SECONDS = 24 * 3600
#: Longest wait for the failure ledger. A healthy database answers in a millisecond; past
#: this, the login goes on with this node's own counts rather than wait.
LEDGER_TIMEOUT = 1.0
#: After a ledger call failed or timed out, count on this node alone this long, so a database
#: that is down or stuck does not add ``LEDGER_TIMEOUT`` to every login.
LEDGER_PAUSE = 5.0
#: A ledger problem is logged at most this often.
LEDGER_LOG_SECONDS = 60
#: A pair lock the ledger confirmed this recently refuses without asking it again (only a
#: success racing the lock can end one early).
RELOOK_SECONDS = 5.0
#: Ledger writes left running in the background (a success's) at most; past it, a success
#: skips its write (the counts then stay stricter than they need to, never looser).
MAX_PENDING_WRITES = 1000
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
    version: int = 0            #: the ledger's version of this counter last taken (0: none)
    looked: float = -math.inf   #: when the ledger last told us about this counter


class _Tier:
    """One kind of counter (pair, address or account): its limit, period and table."""

    def __init__(self, scope: str, limit: int, seconds: float) -> None:
        self.scope = scope
        self.limit = limit
        self.seconds = seconds
        self.table: collections.OrderedDict[object, _Counter] = collections.OrderedDict()

    def bucket(self, key: object) -> Bucket:
        """The ledger's counter for ``key`` (an address never holds NUL, so the join is
        unambiguous whatever the user name holds)."""
        parts = key if isinstance(key, tuple) else (key,)
        return Bucket("\0".join((self.scope, *map(str, parts))), self.limit, self.seconds)

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
                 clock: Callable[[], float] = time.monotonic, ledger: FailureLedger | None = None,
                 ledger_timeout: float = LEDGER_TIMEOUT) -> None:
        self.limits = limits
        self.bus = bus
        #: Called with the user name when a pair or account lock starts, or when this node
        #: first hears of one another node started (the credential cache forgets that user,
        #: so a lock is never bypassed by a cached password).
        self.on_lockout = on_lockout
        self._clock = clock
        #: Where the counts are shared (the store's ``login_failures``); None: this process only.
        self.ledger = ledger
        self.ledger_timeout = ledger_timeout
        self._ledger_paused_until = -math.inf
        self._ledger_logged = -math.inf
        self._pending: set[asyncio.Task[Any]] = set()
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

    async def settle(self) -> None:
        """Wait for ledger writes still running in the background (each is bounded by
        ``ledger_timeout``); the runtime calls it before it closes the store."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

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
            pair = self._pairs.get((addr, user), now, create=False)
            if pair is not None and pair.locked_until > now and now - pair.looked < RELOOK_SECONDS:
                # A pair lock applies known or not: refuse without a round trip, so a client
                # retrying under its lock costs nothing.
                self._refuse(attempt, [(self._pairs, pair)], now)
            standing = await self._look(attempt)
            attempt.standing = standing
            now = self._clock()
            if standing is not None:
                self._adopt(attempt, standing, now)
            known = self._is_known(addr, user, now)
            # Look, do not create: a refused attempt must leave nothing behind, or a stream of
            # cheap refusals with fresh names would push real records (locks) out of the tables.
            applying = self._counters(addr, user, now, create=False, known=known)
            locks = [(t, c) for t, c in applying if c is not None and c.locked_until > now]
            if locks:
                self._refuse(attempt, locks, now)
            # All three counters are reserved even when the pair is known: its failure still
            # counts against the address and the account.
            counters = []
            for tier, key in self._keys(attempt):
                c = tier.get(key, now, create=True)
                assert c is not None
                if standing is not None:
                    self._take(tier, c, standing.counts.get(tier.bucket(key).key), attempt, now)
                counters.append(c)
            pair, address, account = counters
            checked = [(self._pairs, pair)] if known else \
                [(self._pairs, pair), (self._addresses, address), (self._accounts, account)]
            if address.in_flight < self.limits.concurrent and all(t.has_room(c) for t, c in checked):
                for c in (pair, address, account):
                    c.in_flight += 1
                attempt.counters = (pair, address, account)
                return
            await self._wait(addr, user)

    def _refuse(self, attempt: LoginAttempt, locks: list[tuple[_Tier, _Counter]], now: float) -> None:
        """Raise LoginLocked for the lock that ends last."""
        tier, c = max(locks, key=lambda lock: lock[0].locked_for(lock[1], now))
        # Refusals cost nothing, so a client may send them fast: log one a minute per lock,
        # enough for an operator (fail2ban counts only checked failures).
        if now - c.refusal_logged >= REFUSAL_LOG_SECONDS:
            c.refusal_logged = now
            self._log_failure(attempt, "locked")
        raise LoginLocked(tier.locked_for(c, now), tier.scope)

    def _keys(self, attempt: LoginAttempt) -> tuple[tuple[_Tier, object], ...]:
        """Each tier with this attempt's key in it: pair, address, account."""
        return ((self._pairs, (attempt.addr, attempt.user)), (self._addresses, attempt.addr),
                (self._accounts, attempt.user))

    # -- the shared ledger ---------------------------------------------------------------------

    async def _look(self, attempt: LoginAttempt) -> Standing | None:
        ledger = self.ledger
        if ledger is None:
            return None
        keys = [tier.bucket(key).key for tier, key in self._keys(attempt)]
        return await self._ledger_call(lambda: ledger.look(keys, keys[0]))

    def _adopt(self, attempt: LoginAttempt, standing: Standing, now: float) -> None:
        """Take what the ledger said into the working copy: the counters this node holds,
        and the locks it did not know of (their counters are made, to hold them)."""
        if standing.known_for > 0:
            pair_key = (attempt.addr, attempt.user)
            until = max(self._known.pop(pair_key, now), now + standing.known_for)
            self._known[pair_key] = until
            while len(self._known) > MAX_KNOWN:
                self._known.popitem(last=False)
        for tier, key in self._keys(attempt):
            tally = standing.counts.get(tier.bucket(key).key)
            c = tier.get(key, now, create=tally is not None and tally.locked_for > 0)
            if c is not None:
                self._take(tier, c, tally, attempt, now)

    def _take(self, tier: _Tier, c: _Counter, tally: FailureCount | None, attempt: LoginAttempt, now: float) -> None:
        """Make ``c`` what the ledger holds, unless this node already holds a later version.
        No tally (the ledger holds no such counter) changes nothing: the working copy
        leaks to 0 on its own, as the ledger's row did before it was dropped."""
        c.looked = now
        if tally is None or tally.version <= c.version:
            return
        was_locked = c.locked_until > now
        c.level, c.stamp, c.version = tally.level, now, tally.version
        c.locked_until = now + tally.locked_for if tally.locked_for > 0 else 0.0
        if (c.locked_until > now and not was_locked and not tally.started and tier is not self._addresses
                and self.on_lockout is not None):
            self.on_lockout(attempt.user)    # another node started it

    async def _ledger_call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """``call()`` within ``ledger_timeout``; None (count locally) if it fails or if the
        ledger is resting after a failure."""
        if self._clock() < self._ledger_paused_until:
            return None
        try:
            async with asyncio.timeout(self.ledger_timeout):
                return await call()
        except Exception as exc:  # noqa: BLE001 - whatever the ledger's trouble, logins go on
            now = self._clock()
            self._ledger_paused_until = now + LEDGER_PAUSE
            if now - self._ledger_logged >= LEDGER_LOG_SECONDS:
                self._ledger_logged = now
                reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
                log.warning("failed-login counts unavailable (%s): counting on this node only for %d s",
                            reason, LEDGER_PAUSE)
            return None

    def _spawn(self, call: Callable[[], Awaitable[T]]) -> asyncio.Task[T | None] | None:
        """Run a ledger write as a task of its own, kept until done (for ``settle``); None
        when too many are running already."""
        if len(self._pending) >= MAX_PENDING_WRITES:
            return None
        task = asyncio.get_running_loop().create_task(self._ledger_call(call))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

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
        pair = self._pairs.table.pop(pair_key, None)
        self._known.pop(pair_key, None)
        self._known[pair_key] = now + KNOWN_SECONDS
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)
        ledger, standing = self.ledger, attempt.standing
        if ledger is None or standing is None:
            return
        # Write only what changes something; after the answer, so a success costs one round
        # trip (the look) whatever it has to tell the other nodes.
        key = self._pairs.bucket(pair_key).key
        tally = standing.counts.get(key)
        failures = (pair is not None and pair.level > 0) or (tally is not None and tally.level > 0)
        if failures or standing.known_for < KNOWN_SECONDS - KNOWN_REFRESH_SECONDS:
            self._spawn(lambda: ledger.succeed(key, KNOWN_SECONDS))

    async def _failed(self, attempt: LoginAttempt, reason: str) -> float:
        """Record a checked failure; returns the delay before answering it."""
        counted = list(zip((self._pairs, self._addresses, self._accounts), attempt.counters))
        buckets = [tier.bucket(key) for tier, key in self._keys(attempt)]
        tallies: dict[str, FailureCount] | None = None
        ledger = self.ledger
        if ledger is not None:
            # Shielded: a caller that goes away (a dropped connection) must not take the
            # failure with it. It is then counted here too, and reaches the ledger anyway.
            task = self._spawn(lambda: ledger.fail(buckets))
            if task is not None:
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    now = self._clock()
                    for tier, c in counted:
                        tier.fail(c, now)
                    raise
                tallies = task.result()
        now = self._clock()
        levels = []
        locked: list[_Tier] = []
        for (tier, c), bucket in zip(counted, buckets):
            tally = tallies.get(bucket.key) if tallies is not None else None
            if tally is None:
                started = tier.fail(c, now)
            else:
                self._take(tier, c, tally, attempt, now)
                started = tally.started
            if started:
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
        #: What the ledger said when this attempt was admitted (None: nothing was asked).
        self.standing: Standing | None = None

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
        try:
            delay = await self.guard._failed(self, reason)
        finally:
            self.guard._release(self)
        if delay:
            # Slows each connection's guessing; the slot is already free, so a failing client
            # does not hold up others behind the same address.
            await asyncio.sleep(delay)

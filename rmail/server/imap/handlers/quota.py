"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA, and the STATUS items DELETED and
DELETED-STORAGE (§4.2) that the RES-STORAGE capability requires.

rmail has one quota per user (core.quota: a limit on the sum of RFC822.SIZE over all its
mailboxes, the user's own or the configured default), so every mailbox of a user belongs to
one quota root, named "" as in the RFC's examples and in mox. The one resource is STORAGE
(§3.2.1), in units of 1024 octets.

Invariants:

- A user without a limit has no quota root: GETQUOTAROOT answers ``* QUOTAROOT mailbox``
  with no root (§5.2 allows none) and GETQUOTA "" ``NO [NONEXISTENT]``; a QUOTA response
  with an empty resource list is not valid syntax (§5: quota-list holds at least one).
- Usage and limit are read together from one snapshot (`Quotas.state`), the same numbers
  APPEND and COPY are checked against (``NO [OVERQUOTA]``).
- Only the administrator sets quotas (``run.py user quota``): SETQUOTA is parsed, then refused
  with ``NO [NOPERM]`` (§4.1.3: "NO - setquota error: can't set that data"); QUOTASET is
  not advertised.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Final

from rmail.server.core.quota import UNLIMITED, QuotaState
from rmail.server.core.slicing import Slicer
from rmail.server.core.storage.mail import MailStore

from .. import commands as c
from ..encode import Atom, Data, Tagged
from ..errors import CommandError
from ..state import SessionState

__all__ = ["HANDLERS", "ROOT", "deleted_status", "kib"]

#: The name of a user's one quota root (RFC 9208 §5: quota-root = astring; may be empty).
ROOT: Final = ""
#: The resource rmail limits (RFC 9208 §3.2.1).
STORAGE: Final = "STORAGE"


def kib(octets: int) -> int:
    """Octets in RFC 9208's units of 1024 octets, rounded down (as Dovecot reports them)."""
    return octets // 1024


async def _limited_state(s: SessionState) -> QuotaState | None:
    """The user's usage and limit, or None when it has no limit (then no quota root)."""
    quotas = s.services.quotas
    if quotas is None:
        return None
    state = await quotas.state(s.account.id)
    return None if state.limit == UNLIMITED else state


def _quota_data(state: QuotaState) -> Data:
    """``* QUOTA "" (STORAGE used limit)`` (RFC 9208 §5.1)."""
    return Data("QUOTA", (ROOT, (Atom(STORAGE), kib(state.used), kib(state.limit))))


async def getquota(s: SessionState, cmd: c.GetQuota) -> Tagged:
    state = await _limited_state(s) if cmd.root == ROOT else None
    if state is None:
        raise CommandError("NO", "no such quota root", "NONEXISTENT")
    s.send(_quota_data(state))
    return Tagged(cmd.tag, "OK", "GETQUOTA completed")


async def getquotaroot(s: SessionState, cmd: c.GetQuotaRoot) -> Tagged:
    mailbox = await s.store.get_mailbox(s.account.id, cmd.mailbox)  # NO [NONEXISTENT]
    state = await _limited_state(s)
    name = s.wire_mailbox(mailbox.name)
    if state is None:
        s.send(Data("QUOTAROOT", (name,)))
    else:
        s.send(Data("QUOTAROOT", (name, ROOT)), _quota_data(state))
    return Tagged(cmd.tag, "OK", "GETQUOTAROOT completed")


async def setquota(s: SessionState, cmd: c.SetQuota) -> Tagged:
    raise CommandError("NO", "quotas are set by the administrator (run.py user quota)", "NOPERM")


async def deleted_status(store: MailStore, mailbox_id: int) -> tuple[int, int]:
    """STATUS DELETED and DELETED-STORAGE (RFC 9208 §4.2): how many messages carry
    ``\\Deleted`` and what an EXPUNGE would free, in KiB like STORAGE (the exact figure: the
    sum of their RFC822.SIZE, which is what the quota counts)."""
    count = size = 0
    slicer = Slicer()
    for meta in await store.list_messages(mailbox_id):
        if "\\Deleted" in meta.flags:
            count += 1
            size += meta.size
        if slicer.due():
            await slicer.pause()
    return count, kib(size)


HANDLERS: Final[dict[type[c.Command], Callable[..., Awaitable[Tagged]]]] = {
    c.GetQuota: getquota, c.GetQuotaRoot: getquotaroot, c.SetQuota: setquota,
}

"""Delivery: resolve recipients (user, alias or remote), store once for every local user,
hand remote recipients to the outbound queue.

``deliver`` returns only when every local copy is durable and every remote recipient is
durably queued, all in one transaction; that is the moment an adapter may acknowledge (SMTP
250, REST 202). A failure stores nothing, so the sender's retry never duplicates a copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from .accounts import Accounts
from .aliases import POSTMASTER, Aliases, Resolution
from .db import WriteTxn
from .errors import InvalidInput, NotFound, PermissionDenied, TemporaryFailure
from .events import AccountsChanged, Event, EventBus, ExternalChange, MessageReceived
from .model import Account, Address
from .store import MailStore

log = logging.getLogger("rmail.delivery")


class Outbound(Protocol):
    """The outbound queue as delivery sees it (core.queue implements it)."""

    def stage(self, txn: WriteTxn, sender: str, recipients: Sequence[str], blob_id: str, data: bytes) -> list[int]:
        """Add an entry per remote recipient inside ``txn``, which already holds the message
        bytes as ``blob_id`` and the local copies; returns the entry ids. Runs on the store's
        writer thread: SQL only, no awaiting, no loop objects."""

    def wake(self) -> None:
        """The transaction has committed: look at the queue again."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    local: tuple[str, ...]         #: local user addresses that got a copy
    queued: tuple[int, ...]        #: queue entry ids for remote recipients


@dataclass
class Delivery:
    store: MailStore
    accounts: Accounts
    aliases: Aliases
    bus: EventBus
    outbound: Outbound | None = None
    _inbox: dict[int, int] = field(default_factory=dict)   # user id → INBOX id (INBOX never moves)

    def forget_cached(self, event: Event) -> None:
        if isinstance(event, (AccountsChanged, ExternalChange)):
            self._inbox.clear()

    async def check_recipient(self, recipient: str, *, may_relay: bool) -> Resolution:
        """Decide whether RCPT TO may be accepted.

        Raises:
            InvalidInput: not an address.  NotFound: local domain, but no user or alias matches.
            PermissionDenied: remote domain and the client may not relay.
        """
        if recipient.strip().lower() == POSTMASTER:
            # RFC 5321 §4.5.1: "RCPT TO:<Postmaster>" without a domain must be accepted.
            resolution = await self.aliases.resolve_bare_postmaster()
        else:
            resolution = await self.aliases.resolve(Address.parse(recipient))
        if resolution.local_domain:
            if resolution.account is None:
                raise NotFound(f"no mailbox here for {resolution.address}")
        elif not may_relay:
            raise PermissionDenied(f"relay access denied for {resolution.address}")
        return resolution

    async def inbox_of(self, account: Account) -> int:
        inbox = self._inbox.get(account.id)
        if inbox is None:
            inbox = (await self.store.get_mailbox(account.id, "INBOX")).id
            self._inbox[account.id] = inbox
        return inbox

    async def deliver(self, sender: str, recipients: Sequence[str | Resolution], data: bytes, *,
                      may_relay: bool, protocol: str = "smtp") -> DeliveryReport:
        """Store ``data`` for local recipients and queue it for remote ones.

        Raises:
            NotFound / PermissionDenied / InvalidInput as ``check_recipient``;
            TemporaryFailure when remote mail cannot be queued.
        """
        local: dict[int, Account] = {}
        remote: list[str] = []
        for rcpt in recipients:
            res = rcpt if isinstance(rcpt, Resolution) else await self.check_recipient(rcpt, may_relay=may_relay)
            if res.account is not None:
                local.setdefault(res.account.id, res.account)
            elif not res.local_domain:
                remote.append(str(res.address))
        if not local and not remote:
            raise InvalidInput("no valid recipients")
        outbound = self.outbound
        if remote and outbound is None:
            raise TemporaryFailure("outbound delivery is not available")

        def queue_remote(txn: WriteTxn, blob_id: str) -> list[int]:
            assert outbound is not None
            return outbound.stage(txn, sender, remote, blob_id, data)
        also = queue_remote if remote else None
        # One transaction for the local copies and the queue entries: either the sender is
        # told 250 and everything is durable, or it is told to retry and nothing was stored.
        targets = [(await self.inbox_of(account), ()) for account in local.values()]
        try:
            _, queued = await self.store.deliver_with(targets, data, also)
        except NotFound:
            if not local:
                raise
            # A user was removed since we cached its INBOX; look again once.
            self._inbox.clear()
            targets = [(await self.inbox_of(a), ()) for a in local.values()]
            _, queued = await self.store.deliver_with(targets, data, also)
        if remote:
            assert outbound is not None
            outbound.wake()
        queued = queued or []
        self.bus.publish(MessageReceived(protocol, sender, len(local), len(remote), len(data)))
        return DeliveryReport(tuple(a.address for a in local.values()), tuple(queued))

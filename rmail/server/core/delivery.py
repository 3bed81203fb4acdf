"""Delivery: resolve recipients (user, alias or remote), store once for every local user,
hand remote recipients to the outbound queue.

``deliver`` returns only when every local copy is durable and every remote recipient is
durably queued; that is the moment an adapter may acknowledge (SMTP 250, REST 202).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from .accounts import Accounts
from .aliases import Aliases, Resolution
from .errors import InvalidInput, NotFound, PermissionDenied, TemporaryFailure
from .events import AccountsChanged, Event, EventBus, ExternalChange, MessageReceived
from .model import Account, Address
from .store import MailStore
from .tracefields import return_path, without_return_path

log = logging.getLogger("rmail.delivery")


class Outbound(Protocol):
    """The outbound queue as delivery sees it (core.queue implements it)."""

    async def enqueue(self, sender: str, recipients: Sequence[str], data: bytes) -> list[int]:
        """Durably queue ``data`` for each remote recipient; returns the entry ids."""


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
        if remote and self.outbound is None:
            raise TemporaryFailure("outbound delivery is not available")
        if local:
            # RFC 5321 §4.4: the final delivery records the envelope sender, replacing any
            # Return-Path the message came with. Remote copies leave without one.
            stored = return_path(sender) + without_return_path(data)
            targets = []
            for account in local.values():
                targets.append((await self.inbox_of(account), ()))
            try:
                await self.store.deliver(targets, stored)
            except NotFound:
                # A user was removed since we cached its INBOX; look again once.
                self._inbox.clear()
                targets = [(await self.inbox_of(a), ()) for a in local.values()]
                await self.store.deliver(targets, stored)
        queued: list[int] = []
        if remote:
            assert self.outbound is not None
            queued = await self.outbound.enqueue(sender, remote, data)
        self.bus.publish(MessageReceived(protocol, sender, len(local), len(remote), len(data)))
        return DeliveryReport(tuple(a.address for a in local.values()), tuple(queued))

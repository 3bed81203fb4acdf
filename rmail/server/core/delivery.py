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
from .errors import InvalidInput, NotFound, PermissionDenied, QuotaExceeded, TemporaryFailure
from .events import AccountsChanged, Event, EventBus, ExternalChange, MessageReceived
from .model import Account, Address
from .quota import Quotas
from .store import MailStore

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
    quotas: Quotas | None = None
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

    async def _check_quotas(self, local: list[Account], written: dict[int, str], remote: bool,
                            size: int) -> None:
        """Refuse the message only when no recipient can take it: every recipient local and
        over quota with it. One reply answers DATA for all recipients (SMTP, REST), so when
        some can take it, refusing would make the sender retry and duplicate it for them, or
        hold their mail back until the full mailbox empties; the full mailbox then goes over
        its quota by this one message, and the next RCPT TO for it is refused (452 4.2.2).

        Raises:
            QuotaExceeded: every recipient's mailbox is full.
        """
        assert self.quotas is not None
        full = await self.quotas.over(local, size)
        if not full:
            return
        if len(full) == len(local) and not remote:
            # Named as the sender wrote them: an alias's target is not the sender's business.
            raise QuotaExceeded("mailbox full: " + ", ".join(written[a.id] for a in full))
        log.info("delivery: %d-byte message goes over the quota of %s (shared with other recipients)",
                 size, ", ".join(a.address for a in full))

    async def deliver(self, sender: str, recipients: Sequence[str | Resolution], data: bytes, *,
                      may_relay: bool, protocol: str = "smtp") -> DeliveryReport:
        """Store ``data`` for local recipients and queue it for remote ones.

        Raises:
            NotFound / PermissionDenied / InvalidInput as ``check_recipient``;
            QuotaExceeded when every recipient's mailbox is full (see ``_check_quotas``);
            TemporaryFailure when remote mail cannot be queued.
        """
        local: dict[int, Account] = {}
        written: dict[int, str] = {}   # account id → the first recipient address that reached it
        remote: list[str] = []
        for rcpt in recipients:
            res = rcpt if isinstance(rcpt, Resolution) else await self.check_recipient(rcpt, may_relay=may_relay)
            if res.account is not None:
                local.setdefault(res.account.id, res.account)
                written.setdefault(res.account.id, str(res.address))
            elif not res.local_domain:
                remote.append(str(res.address))
        if not local and not remote:
            raise InvalidInput("no valid recipients")
        if remote and self.outbound is None:
            raise TemporaryFailure("outbound delivery is not available")
        if local and self.quotas is not None:
            await self._check_quotas(list(local.values()), written, bool(remote), len(data))
        if local:
            targets = []
            for account in local.values():
                targets.append((await self.inbox_of(account), ()))
            try:
                await self.store.deliver(targets, data)
            except NotFound:
                # A user was removed since we cached its INBOX; look again once.
                self._inbox.clear()
                targets = [(await self.inbox_of(a), ()) for a in local.values()]
                await self.store.deliver(targets, data)
        queued: list[int] = []
        if remote:
            assert self.outbound is not None
            queued = await self.outbound.enqueue(sender, remote, data)
        self.bus.publish(MessageReceived(protocol, sender, len(local), len(remote), len(data)))
        return DeliveryReport(tuple(a.address for a in local.values()), tuple(queued))

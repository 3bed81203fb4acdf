"""Delivery: resolve recipients (user, alias or remote), store once for every local user,
hand remote recipients to the outbound queue.

``deliver`` returns only when every local copy is durable and every remote recipient is
durably queued, all in one transaction; that is the moment an adapter may acknowledge (SMTP
250, REST 202). A failure stores nothing, so the sender's retry never duplicates a copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence

from .accounts import Accounts
from .aliases import POSTMASTER, Aliases, Resolution
from .errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied, QuotaExceeded, TemporaryFailure
from .events import AccountsChanged, Event, EventBus, ExternalChange, MessageReceived
from .model import Account, Address, SpecialUse
from .quota import Quotas
from .storage import mail as storage
from .storage.mail import MailStore
from .tracefields import return_path, without_return_path

if TYPE_CHECKING:
    from .mailauth.signing import Signer

log = logging.getLogger("rmail.delivery")


class Outbound(Protocol):
    """The outbound queue as delivery sees it (core.queue implements it)."""

    def entries_for(self, sender: str, recipients: Sequence[str]) -> storage.Outbound:
        """The entries, one per remote recipient, that the delivery's transaction adds beside
        the local copies (``MailStore.deliver(..., outbound=...)``)."""

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
    quotas: Quotas | None = None
    signer: Signer | None = None       #: DKIM-signs submitted mail (runtime sets it)
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

    async def junk_of(self, account: Account) -> int:
        """The user's \\Junk mailbox (RFC 6154), created as "Junk" when the user has none."""
        for mailbox in await self.store.list_mailboxes(account.id):
            if mailbox.special_use == SpecialUse.JUNK.value:
                return mailbox.id
        try:
            return (await self.store.create_mailbox(account.id, "Junk", SpecialUse.JUNK.value)).id
        except AlreadyExists:
            # A plain "Junk" the user made: the name says what it is for.
            return (await self.store.get_mailbox(account.id, "Junk")).id

    async def _target(self, account: Account, junk: bool) -> int:
        return await (self.junk_of(account) if junk else self.inbox_of(account))

    async def deliver(self, sender: str, recipients: Sequence[str | Resolution], data: bytes, *,
                      may_relay: bool, protocol: str = "smtp", sign_as: str | None = None,
                      junk: bool = False) -> DeliveryReport:
        """Store ``data`` for local recipients and queue it for remote ones.

        ``sign_as``: the local domain whose DKIM keys sign the message first (mail from an
        authenticated user). ``junk``: file local copies in each recipient's Junk mailbox
        instead of INBOX (a DMARC quarantine verdict).

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
        outbound = self.outbound
        if remote and outbound is None:
            raise TemporaryFailure("outbound delivery is not available")
        if local and self.quotas is not None:
            await self._check_quotas(list(local.values()), written, bool(remote), len(data))
        if sign_as and self.signer is not None:
            data = await self.signer.sign(data, sign_as)
        # RFC 5321 §4.4: the final delivery records the envelope sender, replacing any
        # Return-Path the message came with. Remote copies share these bytes; the outbound
        # queue takes the field off again before relaying (core/queue.py).
        stored = return_path(sender) + without_return_path(data) if local else data

        entries = outbound.entries_for(sender, remote) if remote and outbound is not None else None
        # One transaction for the local copies and the queue entries: either the sender is
        # told 250 and everything is durable, or it is told to retry and nothing was stored.
        targets = [(await self._target(account, junk), ()) for account in local.values()]
        try:
            done = await self.store.deliver(targets, stored, outbound=entries)
        except NotFound:
            if not local:
                raise
            # A user was removed since we cached its INBOX; look again once.
            self._inbox.clear()
            targets = [(await self._target(a, junk), ()) for a in local.values()]
            done = await self.store.deliver(targets, stored, outbound=entries)
        if remote:
            assert outbound is not None
            outbound.wake()
        queued = done.queued
        self.bus.publish(MessageReceived(protocol, sender, len(local), len(remote), len(data)))
        return DeliveryReport(tuple(a.address for a in local.values()), tuple(queued))

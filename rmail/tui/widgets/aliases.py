"""Aliases pane: each domain's rules in declaration order (the order they are tried); add,
remove, move up/down, and a dry run of where an address would go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.binding import Binding

from rmail.server.core.errors import RmailError
from rmail.server.core.events import AccountsChanged, AliasesChanged

from ..format import cell
from ..screens.alias_add import AddAliasScreen
from ..screens.confirm import ConfirmScreen
from ..screens.dns_records import DnsRecordsScreen
from ..screens.resolve import ResolveScreen
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from ..source import ConsoleRuntime

#: Separates domain and pattern in a row key; patterns cannot contain control characters.
SEP = "\x1f"


def row_key(domain: str, pattern: str) -> str:
    return f"{domain}{SEP}{pattern}"


def split_key(key: str) -> tuple[str, str]:
    domain, _, pattern = key.partition(SEP)
    return domain, pattern


class AliasesPane(Pane):
    COLUMNS = ("Domain", "#", "Pattern", "Target")
    WATCH = (AliasesChanged, AccountsChanged)
    ORDERED = True
    EMPTY = "No alias rules: press a to add one, w to try an address."
    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("delete,d", "remove", "Remove"),
        Binding("shift+up,ctrl+up", "move(-1)", "Move up"),
        Binding("shift+down,ctrl+down", "move(1)", "Move down"),
        Binding("w", "where", "Where to?"),
        # Hidden from the footer (which has no room left); the palette names it per domain.
        Binding("n", "dns", "DNS records", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.domains: list[str] = []

    async def load(self, runtime: ConsoleRuntime) -> dict[str, Row]:
        rows: dict[str, Row] = {}
        self.domains = await runtime.domains()
        for domain in self.domains:
            for rule in await runtime.aliases(domain):
                rows[row_key(domain, rule.pattern)] = (cell(domain), cell(rule.position), cell(rule.pattern),
                                                       cell(f"{rule.target}@{domain}"))
        return rows

    def _done(self, message: str | None) -> None:
        if message:
            self.notify(message)
            self.mark_dirty()

    def action_add(self) -> None:
        if self.runtime is None:
            return
        key = self.selected
        domain = split_key(key)[0] if key else (self.domains[0] if self.domains else "")
        self.app.push_screen(AddAliasScreen(self.runtime, domain), self._done)

    @work(group="action", exit_on_error=False)
    async def action_dns(self, domain: str | None = None) -> None:
        """The records a domain should publish: the one asked for, the selected rule's, or
        the first domain."""
        if self.runtime is None:
            return
        key = self.selected
        if domain is None and key:
            domain = split_key(key)[0]
        if domain is None:
            try:
                domains = await self.runtime.domains()
            except RmailError as exc:
                self.notify(str(exc), severity="error")
                return
            domain = domains[0] if domains else None
        if domain is None:
            self.notify("no domain yet: add a user first", severity="warning")
            return
        self.app.push_screen(DnsRecordsScreen(self.runtime, domain))

    def action_where(self) -> None:
        if self.runtime is not None:
            self.app.push_screen(ResolveScreen(self.runtime))

    def action_remove(self) -> None:
        key = self.require_selection("alias rule")
        if key is None:
            return
        domain, pattern = split_key(key)

        def answered(yes: bool | None) -> None:
            if yes:
                self._remove(domain, pattern)
        self.app.push_screen(ConfirmScreen(f"Remove alias {pattern!r} of {domain}?", yes="Remove", no="Keep"),
                             answered)

    @work(group="action", exit_on_error=False)
    async def _remove(self, domain: str, pattern: str) -> None:
        if self.runtime is None:
            return
        try:
            await self.runtime.remove_alias(domain, pattern)
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        self._done(f"removed alias {pattern!r} of {domain}")

    @work(exclusive=True, group="action", exit_on_error=False)
    async def action_move(self, step: int) -> None:
        key = self.require_selection("alias rule")
        if key is None or self.runtime is None:
            return
        domain, pattern = split_key(key)
        try:
            rules = await self.runtime.aliases(domain)
            position = next(r.position for r in rules if r.pattern == pattern) + step
            if not 1 <= position <= len(rules):
                return
            await self.runtime.move_alias(domain, pattern, position)
            # Reload now (not at the next tick) so the cursor can follow the moved rule.
            rows = await self.load(self.runtime)
        except (RmailError, StopIteration) as exc:
            self.notify(str(exc) or "the rule is gone", severity="error")
            return
        self.show(rows)
        self.table.move_cursor(row=self.table.get_row_index(key), animate=False)

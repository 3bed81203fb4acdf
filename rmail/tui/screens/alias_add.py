"""Add an alias rule: domain, pattern (a regular expression over the whole local part), target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import Static

from .form import FormScreen, field

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class AddAliasScreen(FormScreen):
    TITLE = "Add an alias rule"
    SUBMIT = "Add"

    def __init__(self, runtime: ConsoleRuntime, domain: str = "") -> None:
        super().__init__(runtime)
        self.domain = domain

    def fields(self) -> ComposeResult:
        yield from field("Domain", "domain", value=self.domain, placeholder="example.com")
        yield from field("Pattern", "pattern", placeholder="sales-.*")
        yield from field("Target", "target", placeholder="alice (a user of the domain)")

    def extras(self) -> ComposeResult:
        yield Static("The pattern must match the whole local part; rules are tried in order,"
                     " after exact users.", classes="hint")

    async def submit(self) -> str:
        domain = self.value("domain").strip()
        rule = await self.runtime.add_alias(domain, self.value("pattern"), self.value("target").strip())
        return f"alias #{rule.position} {rule.pattern!r} → {rule.target}@{rule.domain} added"

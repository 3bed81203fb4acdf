"""The command palette (ctrl+p): every console action, named after the current selection."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

if TYPE_CHECKING:
    from .app import ConsoleApp


@dataclass(frozen=True, slots=True)
class ConsoleCommand:
    title: str
    help: str
    action: str               #: an app action, e.g. "pane('users', 'add')"


def _pane(tab: str, action: str) -> str:
    return f"pane({tab!r}, {action!r})"


def console_commands(app: ConsoleApp) -> Iterator[ConsoleCommand]:
    """The actions available now; those acting on a selection name it, or are left out."""
    for tab, title in (("connections", "Connections"), ("queue", "Queue"), ("users", "Users"),
                       ("aliases", "Aliases"), ("log", "Log"), ("metrics", "Metrics")):
        yield ConsoleCommand(f"Show {title}", f"Switch to the {title} pane", f"show_tab({tab!r})")
    conn, entry, user, rule = (app.selection(t) for t in ("connections", "queue", "users", "aliases"))
    if conn:
        yield ConsoleCommand(f"Disconnect connection {conn}", "Close the selected client connection",
                             _pane("connections", "disconnect"))
    if entry:
        yield ConsoleCommand(f"Retry queue entry {entry} now", "Attempt delivery immediately",
                             _pane("queue", "retry"))
        yield ConsoleCommand(f"Delete queue entry {entry}", "Drop it without delivery (asks first)",
                             _pane("queue", "delete"))
        yield ConsoleCommand(f"View queue entry {entry}", "Envelope, attempts and message header",
                             _pane("queue", "view"))
    yield ConsoleCommand("Add a user", "Address, password twice, admin", _pane("users", "add"))
    if user:
        yield ConsoleCommand(f"Change password of {user}", "Set a new password", _pane("users", "password"))
        yield ConsoleCommand(f"Toggle admin for {user}", "Grant or revoke administrator rights",
                             _pane("users", "toggle_admin"))
        yield ConsoleCommand(f"Remove user {user}", "Delete the user and all its mail (asks first)",
                             _pane("users", "remove"))
    yield ConsoleCommand("Add an alias rule", "Domain, pattern, target user", _pane("aliases", "add"))
    if rule:
        pattern = rule.split("\x1f", 1)[-1]
        yield ConsoleCommand(f"Remove alias {pattern}", "Delete the selected rule (asks first)",
                             _pane("aliases", "remove"))
        yield ConsoleCommand(f"Move alias {pattern} up", "Try it earlier", _pane("aliases", "move(-1)"))
        yield ConsoleCommand(f"Move alias {pattern} down", "Try it later", _pane("aliases", "move(1)"))
    yield ConsoleCommand("Where would an address go?", "Dry run of user and alias resolution",
                         _pane("aliases", "where"))
    domains = getattr(app.pane("aliases"), "domains", [])
    for domain in domains:
        yield ConsoleCommand(f"DNS records for {domain}", "MX, SPF, DKIM, DMARC and more, to publish",
                             _pane("aliases", f"dns({domain!r})"))
    if not domains:
        yield ConsoleCommand("DNS records to publish", "MX, SPF, DKIM, DMARC and more for the first domain",
                             _pane("aliases", "dns"))
    yield ConsoleCommand("Log: change minimum level", "DEBUG, INFO, WARNING, ERROR", _pane("log", "cycle_level"))
    yield ConsoleCommand("Log: change protocol filter", "all, smtp, imap, api, core",
                         _pane("log", "cycle_protocol"))
    yield ConsoleCommand("Log: clear", "Forget the lines shown so far", _pane("log", "clear"))
    yield ConsoleCommand("First-run wizard", "Create an admin user and a TLS certificate", "wizard")
    if app.remote is not None:
        yield ConsoleCommand("Quit", "Leave the console; the server keeps running", "quit")
    else:
        yield ConsoleCommand("Quit", "Stop the server gracefully and leave", "quit")


def highlight(matcher: Matcher, title: str) -> Content:
    """Like ``Matcher.highlight`` but without markup parsing: titles carry user data such as
    alias patterns (``sales-[a-z]+``), which must show as typed."""
    content = Content(title)
    _, offsets = matcher.fuzzy_search.match(matcher.query, title)
    for offset in offsets:
        if not title[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class ConsoleCommands(Provider):
    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    def _run(self, command: ConsoleCommand) -> partial:
        return partial(self.console.run_action, command.action)

    async def discover(self) -> Hits:
        for command in console_commands(self.console):
            yield DiscoveryHit(Content(command.title), self._run(command), text=command.title, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in console_commands(self.console):
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, highlight(matcher, command.title), self._run(command), text=command.title,
                          help=command.help)

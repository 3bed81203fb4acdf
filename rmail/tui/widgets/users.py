"""Users pane: address, admin, mailboxes, messages, size, quota; add, change password, toggle
admin, remove (with confirmation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.binding import Binding

from rmail.server.core.errors import RmailError
from rmail.server.core.events import AccountsChanged, MailboxChanged, MailboxesChanged
from rmail.server.core.quota import UNLIMITED

from ..format import cell, size
from ..screens.confirm import ConfirmScreen
from ..screens.password import ChangePasswordScreen
from ..screens.user_add import AddUserScreen
from ..tables import Row
from .pane import Pane

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


def quota_cell(used: int, limit: int) -> Text:
    """"-" without a limit, else the share used of it; yellow from 90%, red when full."""
    if limit == UNLIMITED:
        return cell("-")
    share = used * 100 // limit
    return cell(f"{share}% of {size(limit)}", "bold red" if share >= 100 else "yellow" if share >= 90 else "")


class UsersPane(Pane):
    COLUMNS = ("Address", "Admin", "Mailboxes", "Messages", "Size", "Quota")
    WATCH = (AccountsChanged, MailboxChanged, MailboxesChanged)
    # Usage is an aggregate query; under a delivery storm once a second is plenty.
    MIN_INTERVAL = 1.0
    EMPTY = "No users yet: press a to add one."
    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("p", "password", "Password"),
        Binding("t", "toggle_admin", "Admin on/off"),
        Binding("delete,d", "remove", "Remove"),
    ]

    async def load(self, runtime: ConsoleRuntime) -> dict[str, Row]:
        return {u.address: (cell(u.address), cell("admin", "bold") if u.admin else cell("-"),
                            cell(u.mailboxes), cell(u.messages), cell(size(u.size)), quota_cell(u.size, u.quota))
                for u in await runtime.users()}

    def _done(self, message: str | None) -> None:
        if message:
            self.notify(message)
            self.mark_dirty()

    def action_add(self) -> None:
        if self.runtime is not None:
            self.app.push_screen(AddUserScreen(self.runtime), self._done)

    def action_password(self) -> None:
        address = self.require_selection("user")
        if address is not None and self.runtime is not None:
            self.app.push_screen(ChangePasswordScreen(self.runtime, address), self._done)

    @work(exclusive=True, group="action", exit_on_error=False)
    async def action_toggle_admin(self) -> None:
        address = self.require_selection("user")
        runtime = self.runtime
        if address is None or runtime is None:
            return
        try:
            account = await runtime.get_user(address)
            account = await runtime.set_admin(address, not account.admin)
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        self._done(f"{address} is {'now' if account.admin else 'no longer'} an administrator")

    def action_remove(self) -> None:
        address = self.require_selection("user")
        if address is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._remove(address)
        self.app.push_screen(ConfirmScreen(f"Remove {address}?",
                                           "All of this user's mail and the alias rules pointing at it"
                                           " are deleted. This cannot be undone.", yes="Remove", no="Keep"),
                             answered)

    @work(group="action", exit_on_error=False)
    async def _remove(self, address: str) -> None:
        if self.runtime is None:
            return
        try:
            await self.runtime.remove_user(address)
        except RmailError as exc:
            self.notify(str(exc), severity="error")
            return
        self._done(f"removed {address}")

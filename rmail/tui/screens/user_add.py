"""Add a user: address, password twice, admin flag."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Checkbox

from rmail.server.core.errors import InvalidInput

from .form import FormScreen, field


class AddUserScreen(FormScreen):
    TITLE = "Add a user"
    SUBMIT = "Add"

    def fields(self) -> ComposeResult:
        yield from field("Address", "address", placeholder="alice@example.com")
        yield from field("Password", "password", password=True)
        yield from field("Again", "password2", password=True)

    def extras(self) -> ComposeResult:
        yield Checkbox("Administrator (may manage aliases over the API)", id="admin", compact=True)

    async def submit(self) -> str:
        address, password = self.value("address").strip(), self.value("password")
        if password != self.value("password2"):
            raise InvalidInput("the two passwords differ")
        account = await self.runtime.add_user(address, password, admin=self.checked("admin"))
        return f"added user {account.address}" + (" (admin)" if account.admin else "")

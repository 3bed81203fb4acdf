"""Change a user's password (typed twice)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult

from rmail.server.core.errors import InvalidInput

from .form import FormScreen, field

if TYPE_CHECKING:
    from ..source import ConsoleRuntime


class ChangePasswordScreen(FormScreen):
    SUBMIT = "Change"

    def __init__(self, runtime: ConsoleRuntime, address: str) -> None:
        super().__init__(runtime)
        self.address = address

    def heading(self) -> str:
        return f"New password for {self.address}"

    def fields(self) -> ComposeResult:
        yield from field("Password", "password", password=True)
        yield from field("Again", "password2", password=True)

    async def submit(self) -> str:
        password = self.value("password")
        if password != self.value("password2"):
            raise InvalidInput("the two passwords differ")
        await self.runtime.set_password(self.address, password)
        return f"password of {self.address} changed"

"""RFC 5321 §4.5.1: every local domain accepts mail for postmaster (any case), and so does
``RCPT TO:<postmaster>`` without a domain. It goes to the domain's first administrator, or its
first user, unless a real user or an alias rule says otherwise. Over SMTP, port 25."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from rmail.server.runtime import ServerRuntime

from ..conftest import PASSWORD

MSG = b"Subject: to the postmaster\r\n\r\nhello\r\n"


def send(rt: ServerRuntime, rcpt: str) -> tuple[int, bytes]:
    """MAIL, one RCPT and (when accepted) DATA on port 25; returns the RCPT reply."""
    with smtplib.SMTP("127.0.0.1", rt.port("smtp"), timeout=10) as client:
        client.ehlo("client.example.net")
        client.mail("someone@example.net")
        code, text = client.rcpt(rcpt)
        if code == 250:
            assert client.data(MSG)[0] == 250
        return code, text


async def runtime_call(fn, *args):  # noqa: ANN001, ANN201
    """Run a blocking stdlib client off the loop the server runs on."""
    return await asyncio.to_thread(fn, *args)


async def count(rt: ServerRuntime, address: str) -> int:
    user = await rt.accounts.get_user(address)
    return (await rt.store.status((await rt.store.get_mailbox(user.id, "INBOX")).id)).messages


@pytest.mark.parametrize("rcpt", ["postmaster@example.com", "PostMaster@EXAMPLE.com", "postmaster",
                                  "<Postmaster>"])
async def test_postmaster_goes_to_the_first_admin(runtime: ServerRuntime, rcpt: str) -> None:
    # alice was created first but bob is the administrator.
    code, _ = await runtime_call(send, runtime, rcpt)
    assert code == 250
    assert (await count(runtime, "bob@example.com"), await count(runtime, "alice@example.com")) == (1, 0)


async def test_domain_without_admin_uses_its_first_user(runtime: ServerRuntime) -> None:
    await runtime.accounts.add_user("carol@other.example", PASSWORD)
    await runtime.accounts.add_user("dan@other.example", PASSWORD)
    assert (await runtime_call(send, runtime, "postmaster@other.example"))[0] == 250
    assert (await count(runtime, "carol@other.example"), await count(runtime, "dan@other.example")) == (1, 0)


async def test_an_alias_rule_or_a_real_user_takes_precedence(runtime: ServerRuntime) -> None:
    await runtime.aliases.add("example.com", "post.*", "alice")
    assert (await runtime_call(send, runtime, "postmaster@example.com"))[0] == 250
    assert await count(runtime, "alice@example.com") == 1
    await runtime.accounts.add_user("postmaster@example.com", PASSWORD)
    assert (await runtime_call(send, runtime, "POSTMASTER@example.com"))[0] == 250
    assert await count(runtime, "postmaster@example.com") == 1
    assert await count(runtime, "alice@example.com") == 1


async def test_other_unknown_local_parts_are_still_refused(runtime: ServerRuntime) -> None:
    code, text = await runtime_call(send, runtime, "postmistress@example.com")
    assert code == 550 and text.startswith(b"5.1.1")
    resolution = await runtime.aliases.resolve("postmaster@example.com")
    assert "RFC 5321" in resolution.describe() and "bob@example.com" in resolution.describe()

"""MX routing (RFC 5321 §5.1, RFC 7505 null MX) with a fake resolver, and outbound framing."""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver
import pytest

from rmail.server.core.queue import Outcome
from rmail.server.smtp.outbound import RouteError, _reply_result, mx_routes, normalize_line_endings


@dataclass
class MX:
    preference: int
    exchange: dns.name.Name


class FakeResolver:
    def __init__(self, answers: dict[tuple[str, str], object]) -> None:
        self.answers = answers

    async def resolve(self, name: str, rdtype: str):
        answer = self.answers.get((name, rdtype), dns.resolver.NoAnswer())
        if isinstance(answer, Exception):
            raise answer
        return answer


def mx(*records: tuple[int, str]) -> list[MX]:
    return [MX(p, dns.name.from_text(host)) for p, host in records]


async def test_mx_by_preference() -> None:
    r = FakeResolver({("example.org", "MX"): mx((20, "b.example.org."), (10, "a.example.org."))})
    assert [route.host for route in await mx_routes("example.org", r)] == ["a.example.org", "b.example.org"]
    assert all(route.port == 25 and not route.verify for route in await mx_routes("example.org", r))


async def test_implicit_mx_falls_back_to_address_records() -> None:
    r = FakeResolver({("example.org", "AAAA"): ["::1"]})
    assert [route.host for route in await mx_routes("example.org", r)] == ["example.org"]


@pytest.mark.parametrize("answers, status, outcome", [
    ({("example.org", "MX"): mx((0, "."))}, "5.1.10", Outcome.PERMANENT),                 # RFC 7505 null MX
    ({("example.org", "MX"): dns.resolver.NXDOMAIN()}, "5.1.2", Outcome.PERMANENT),
    ({}, "5.1.2", Outcome.PERMANENT),                                                  # no MX, no address
    ({("example.org", "MX"): dns.exception.Timeout()}, "4.4.3", Outcome.TEMPORARY),
    ({("example.org", "A"): dns.resolver.NoNameservers()}, "4.4.3", Outcome.TEMPORARY),
], ids=["null-mx", "nxdomain", "no-mail-host", "timeout", "servfail"])
async def test_route_failures(answers, status: str, outcome: Outcome) -> None:
    with pytest.raises(RouteError) as err:
        await mx_routes("example.org", FakeResolver(answers))
    assert (err.value.result.status, err.value.result.outcome) == (status, outcome)


@pytest.mark.parametrize("data, expected", [
    (b"a\r\nb\r\n", b"a\r\nb\r\n"),
    (b"a\nb\n", b"a\r\nb\r\n"),
    (b"a\rb\r\n.\n", b"a\r\nb\r\n.\r\n"),
    (b"a\r\r\nb", b"a\r\n\r\nb"),
])
def test_line_endings_normalised_before_relaying(data: bytes, expected: bytes) -> None:
    assert normalize_line_endings(data) == expected


@pytest.mark.parametrize("code, text, outcome, status", [
    (550, b"5.1.1 no such user", Outcome.PERMANENT, "5.1.1"),
    (554, b"rejected", Outcome.PERMANENT, "5.0.0"),
    (451, b"4.7.1 greylisted", Outcome.TEMPORARY, "4.7.1"),
    (421, b"busy", Outcome.TEMPORARY, "4.0.0"),
])
def test_reply_classification(code: int, text: bytes, outcome: Outcome, status: str) -> None:
    result = _reply_result(code, text, "mx.example.org")
    assert (result.outcome, result.status, result.remote_mta) == (outcome, status, "mx.example.org")
    assert result.diagnostic.startswith(str(code))

"""RFC edge cases as tables: SPF (RFC 7208: include/redirect, the 10-lookup and 2-void-lookup
limits, HELO and null sender), DMARC (RFC 7489: record parsing, organisational domains,
relaxed/strict alignment, sp=, pct=), the From domain, and Authentication-Results parsing."""

from __future__ import annotations

import asyncio
from typing import Iterator

import dns.name
import pytest

from rmail.server.core.dns import Resolver
from rmail.server.core.mailauth import dmarc, spf
from rmail.server.core.mailauth.dkim import DkimResult, verify_all
from rmail.server.core.mailauth.dmarc import DmarcRecord, Found, RecordError
from rmail.server.core.mailauth.inbound import from_domain
from rmail.server.core.mailauth.results import authserv_id_of, without_forged_results
from rmail.server.core.mailauth.spf import SpfResult
from tests.helpers.dns import DNSServer

IP = "192.0.2.10"


@pytest.fixture(scope="module")
def zone() -> Iterator[DNSServer]:
    with DNSServer() as server:
        z = server.add
        z("pass.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
        z("fail.test", "TXT", "v=spf1 -all")
        z("soft.test", "TXT", "v=spf1 ~all")
        z("neutral.test", "TXT", "v=spf1 ?all")
        z("two.test", "TXT", "v=spf1 -all", "v=spf1 +all")                        # §4.5: permerror
        z("syntax.test", "TXT", "v=spf1 ip4:not-an-address -all")
        z("notspf.test", "TXT", "google-site-verification=x")                        # §4.5: none
        z("mx.test", "TXT", "v=spf1 mx -all")
        z("mx.test", "MX", "10 mail.mx.test.")
        z("mail.mx.test", "A", IP)
        z("inc.test", "TXT", "v=spf1 include:pass.test -all")
        z("incmissing.test", "TXT", "v=spf1 include:nothing.test -all")             # §5.2: permerror
        z("redir.test", "TXT", "v=spf1 redirect=fail.test")
        z("redirpass.test", "TXT", "v=spf1 redirect=pass.test")
        # A chain of includes: n lookups. §4.6.4: more than 10 is a permerror.
        for n in range(12):
            z(f"c{n}.chain.test", "TXT", f"v=spf1 include:c{n + 1}.chain.test -all" if n < 11 else
              "v=spf1 ip4:192.0.2.0/24 -all")
        z("ten.test", "TXT", "v=spf1 include:c2.chain.test -all")         # 10 lookups: still fine
        z("eleven.test", "TXT", "v=spf1 include:c1.chain.test -all")      # 11 lookups: permerror
        z("void2.test", "TXT", "v=spf1 a:nx1.void2.test a:nx2.void2.test ip4:192.0.2.0/24 -all")
        z("void3.test", "TXT", "v=spf1 a:nx1.void3.test a:nx2.void3.test a:nx3.void3.test ip4:192.0.2.0/24 -all")
        z("helo.test", "TXT", "v=spf1 a -all")
        z("helo.test", "A", IP)
        z("broken.test", "TXT", "v=spf1 -all")
        server.servfail.add(dns.name.from_text("broken.test."))
        z("_dmarc.a.test", "TXT", "v=DMARC1; p=reject; sp=quarantine")
        z("_dmarc.exact.a.test", "TXT", "v=DMARC1; p=none")
        z("_dmarc.dup.test", "TXT", "v=DMARC1; p=none", "v=DMARC1; p=reject")
        z("_dmarc.other.test", "TXT", "some other record")
        yield server


@pytest.fixture(scope="module")
def resolver(zone: DNSServer) -> Resolver:
    return Resolver(("127.0.0.1", zone.port), timeout=1)


@pytest.mark.parametrize("domain, expected", [
    ("pass.test", "pass"), ("fail.test", "fail"), ("soft.test", "softfail"), ("neutral.test", "neutral"),
    ("nothing.test", "none"), ("notspf.test", "none"), ("two.test", "permerror"), ("syntax.test", "permerror"),
    ("mx.test", "pass"), ("inc.test", "pass"), ("incmissing.test", "permerror"), ("redir.test", "fail"),
    ("redirpass.test", "pass"), ("ten.test", "pass"), ("eleven.test", "permerror"),
    ("void2.test", "pass"), ("void3.test", "permerror"), ("broken.test", "temperror"),
])
def test_spf_check_host(resolver: Resolver, domain: str, expected: str) -> None:
    result = spf.check_host(IP, f"bounce@{domain}", "client.example", resolver)
    assert (result.result, result.domain, result.identity) == (expected, domain, "mailfrom"), result.reason


def test_spf_elsewhere_fails_and_ipv6_is_checked(resolver: Resolver) -> None:
    assert spf.check_host("198.51.100.1", "x@pass.test", "h", resolver).result == "fail"
    assert spf.check_host("2001:db8::1", "x@pass.test", "h", resolver).result == "fail"


@pytest.mark.parametrize("mail_from, helo, mailfrom_result, helo_result", [
    ("x@pass.test", "helo.test", ("pass", "pass.test"), ("pass", "helo.test")),
    ("", "helo.test", ("pass", "helo.test"), ("pass", "helo.test")),        # §2.4: null sender → postmaster@HELO
    ("", "[192.0.2.10]", ("none", ""), ("none", "")),                       # an address literal is no domain
    ("x@fail.test", "localhost", ("fail", "fail.test"), ("none", "")),
])
def test_spf_identities(resolver: Resolver, mail_from: str, helo: str, mailfrom_result: tuple,
                        helo_result: tuple) -> None:
    got_from, got_helo = spf.check_identities(IP, mail_from, helo, resolver)
    assert (got_from.result, got_from.domain) == mailfrom_result
    assert (got_helo.result, got_helo.domain, got_helo.identity) == (*helo_result, "helo")


# -- DMARC --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("v=DMARC1; p=reject", DmarcRecord("reject")),
    ("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20", DmarcRecord("quarantine", "none", None, "s", "s", 20)),
    ("V=dmarc1; P=Reject; ", DmarcRecord("reject")),
    ("v=DMARC1; p=none; rua=mailto:a@x.test,mailto:b@y.test!10m", DmarcRecord("none", rua=("mailto:a@x.test",
                                                                                          "mailto:b@y.test!10m"))),
    ("v=DMARC1; p=bogus; rua=mailto:a@x.test", DmarcRecord("none", rua=("mailto:a@x.test",))),  # §6.6.3
    ("v=DMARC1; p=reject; np=quarantine; future=1", DmarcRecord("reject", np="quarantine")),
])
def test_dmarc_record_parsing(text: str, expected: DmarcRecord) -> None:
    assert dmarc.parse_record(text) == expected


@pytest.mark.parametrize("text", [
    "p=reject; v=DMARC1", "v=DMARC1; p=bogus", "v=DMARC1", "v=DMARC1; p=reject; sp=maybe",
    "v=DMARC1; p=reject; adkim=x", "v=DMARC1; p=reject; pct=101", "v=DMARC1; p=reject; pct=-1", "v=DMARC1; junk",
])
def test_dmarc_invalid_records(text: str) -> None:
    with pytest.raises(RecordError):
        dmarc.parse_record(text)


@pytest.mark.parametrize("domain, org", [
    ("a.test", "a.test"), ("mail.a.test", "a.test"), ("x.y.example.co.uk", "example.co.uk"),
    ("co.uk", "co.uk"), ("user.github.io", "user.github.io"), ("deep.user.github.io", "user.github.io"),
])
def test_organisational_domain(domain: str, org: str) -> None:
    assert dmarc.org_domain(domain) == org


@pytest.mark.parametrize("a, b, mode, expected", [
    ("a.test", "a.test", "s", True), ("mail.a.test", "a.test", "s", False), ("mail.a.test", "a.test", "r", True),
    ("a.test", "x.mail.a.test", "r", True), ("b.test", "a.test", "r", False),
    ("one.example.co.uk", "two.example.co.uk", "r", True), ("example.co.uk", "other.co.uk", "r", False),
    ("", "a.test", "r", False),
])
def test_alignment(a: str, b: str, mode: str, expected: bool) -> None:
    assert dmarc.aligned(a, b, mode) is expected


def _spf(result: str, domain: str) -> SpfResult:
    return SpfResult(result, "mailfrom", domain)


def _dkim(result: str, domain: str) -> DkimResult:
    return DkimResult(result, domain)


R = DmarcRecord
A = "a.test"


@pytest.mark.parametrize("from_domain, found, spf_r, dkim_r, result, disposition", [
    (A, Found(R("reject"), A), _spf("pass", A), [], "pass", "none"),
    (A, Found(R("reject"), A), _spf("fail", A), [_dkim("pass", A)], "pass", "none"),
    (A, Found(R("reject"), A), _spf("pass", "bounce.a.test"), [], "pass", "none"),            # relaxed SPF
    (A, Found(R("reject", aspf="s"), A), _spf("pass", "bounce.a.test"), [], "fail", "reject"),  # strict SPF
    (A, Found(R("reject"), A), _spf("none", ""), [_dkim("pass", "mail.a.test")], "pass", "none"),
    (A, Found(R("reject", adkim="s"), A), _spf("none", ""), [_dkim("pass", "mail.a.test")], "fail", "reject"),
    (A, Found(R("reject"), A), _spf("pass", "b.test"), [_dkim("pass", "b.test")], "fail", "reject"),  # unaligned
    (A, Found(R("reject"), A), _spf("softfail", A), [_dkim("fail", A)], "fail", "reject"),
    ("sub.a.test", Found(R("reject", sp="quarantine"), A), _spf("none", ""), [], "fail", "quarantine"),  # sp=
    ("sub.a.test", Found(R("reject"), A), _spf("none", ""), [], "fail", "reject"),   # no sp: p applies
    (A, Found(R("reject", sp="none"), A), _spf("none", ""), [], "fail", "reject"),  # sp is for subdomains only
    (A, Found(R("quarantine"), A), _spf("none", ""), [], "fail", "quarantine"),
    (A, Found(R("none"), A), _spf("fail", A), [], "fail", "none"),
    (A, Found(None), _spf("fail", A), [], "none", "none"),
    (A, Found(None, A, "temperror", "x"), _spf("fail", A), [], "temperror", "none"),
    (A, Found(R("reject"), A), _spf("temperror", A), [], "temperror", "none"),       # never reject on DNS trouble
    (A, Found(R("reject"), A), _spf("none", ""), [_dkim("temperror", A)], "temperror", "none"),
])
def test_dmarc_evaluation(from_domain: str, found: Found, spf_r: SpfResult, dkim_r: list, result: str,
                          disposition: str) -> None:
    got = dmarc.evaluate(from_domain, found, spf_r, dkim_r, rand=lambda: 0.0)
    assert (got.result, got.disposition) == (result, disposition), got.reason


@pytest.mark.parametrize("pct, draw, disposition", [
    (50, 0.49, "reject"), (50, 0.50, "quarantine"), (0, 0.0, "quarantine"), (100, 0.999, "reject"),
])
def test_dmarc_pct_samples_and_steps_down(pct: int, draw: float, disposition: str) -> None:
    got = dmarc.evaluate(A, Found(R("reject", pct=pct), A), _spf("fail", A), [], rand=lambda: draw)
    assert got.disposition == disposition
    quarantine = dmarc.evaluate(A, Found(R("quarantine", pct=0), A), _spf("fail", A), [], rand=lambda: 0.5)
    assert quarantine.disposition == "none"


@pytest.mark.parametrize("from_domain, where, record_p, error", [
    ("a.test", "a.test", "reject", ""),
    ("deep.sub.a.test", "a.test", "reject", ""),               # §6.6.3: fall back to the org domain
    ("exact.a.test", "exact.a.test", "none", ""),             # a record at the From domain wins
    ("dup.test", "dup.test", None, "permerror"),              # two DMARC records: no policy
    ("other.test", "", None, ""),                             # no v=DMARC1 record
])
def test_dmarc_record_discovery(resolver: Resolver, from_domain: str, where: str, record_p: str | None,
                                error: str) -> None:
    found = asyncio.run(dmarc.find_record(from_domain, resolver))
    assert (found.domain, found.record.p if found.record else None, found.error) == (where, record_p, error)


@pytest.mark.parametrize("header, expected", [
    (b"From: a@a.test\r\n\r\n", ("a.test", "")),
    (b"From: \"Boss\" <ceo@Sub.A.Test>\r\n\r\n", ("sub.a.test", "")),
    (b"From: a@a.test, b@a.test\r\n\r\n", ("a.test", "")),
    (b"From: a@a.test, b@b.test\r\n\r\n", (None, "From has addresses in several domains")),
    (b"From: a@a.test\r\nFrom: b@a.test\r\n\r\n", (None, "more than one From field")),
    (b"Subject: x\r\n\r\n", (None, "no From field")),
    (b"From: undisclosed-recipients:;\r\n\r\n", (None, "From has no address")),
    ("From: a@bücher.test\r\n\r\n".encode(), ("xn--bcher-kva.test", "")),
])
def test_from_domain(header: bytes, expected: tuple) -> None:
    assert from_domain(header + b"body\r\n") == expected


@pytest.mark.parametrize("value, authserv", [
    (b" mail.b.test; dkim=pass", "mail.b.test"),
    (b" (comment) Mail.B.Test 1;\r\n\tspf=pass smtp.mailfrom=x", "mail.b.test"),
    (b" mail.b.test; none", "mail.b.test"),
    (b" mail.b.test; %%% not valid %%%", "mail.b.test"),      # malformed: still recognised
    (b" other.test; dkim=pass", "other.test"),
])
def test_authserv_id(value: bytes, authserv: str) -> None:
    assert authserv_id_of(value) == authserv


def test_forged_results_removed_only_in_the_header() -> None:
    data = (b"Authentication-Results: mail.b.test; dkim=pass\r\nSubject: x\r\n"
            b"Authentication-Results: other.test; spf=pass\r\n\r\nAuthentication-Results: mail.b.test; in body\r\n")
    assert without_forged_results(data, "MAIL.B.TEST") == (
        b"Subject: x\r\nAuthentication-Results: other.test; spf=pass\r\n\r\n"
        b"Authentication-Results: mail.b.test; in body\r\n")


def test_dkim_verify_edge_cases(resolver: Resolver) -> None:
    txt = resolver.txt_sync
    assert verify_all(b"From: a@a.test\r\n\r\nno signature\r\n", txt) == []
    [garbled] = verify_all(b"DKIM-Signature: v=1; a=rsa-sha256; this is not a tag list\r\n"
                           b"From: a@a.test\r\n\r\nx\r\n", txt)
    assert garbled.result == "permerror"
    [nokey] = verify_all(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test; s=gone; h=from;"
                         b" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\nFrom: a@a.test\r\n\r\n", txt)
    assert (nokey.result, nokey.domain, nokey.selector) == ("permerror", "a.test", "gone")
    many = b"".join(b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=s%d; h=from; bh=x; b=y\r\n" % i for i in range(9))
    assert len(verify_all(many + b"From: a@a.test\r\n\r\n", txt)) == 5        # bounded work per message


# -- MTA-STS (RFC 8461) ---------------------------------------------------------------------------

from rmail.server.core.mailauth import mtasts  # noqa: E402


@pytest.mark.parametrize("pattern, host, expected", [
    ("mx.a.test", "mx.a.test", True), ("mx.a.test", "MX.A.TEST.", True), ("*.a.test", "mx.a.test", True),
    ("*.a.test", "a.test", False), ("*.a.test", "x.mx.a.test", False), ("mx.a.test", "mx2.a.test", False),
])
def test_mta_sts_mx_patterns(pattern: str, host: str, expected: bool) -> None:
    assert mtasts.mx_matches(pattern, host) is expected


@pytest.mark.parametrize("records, ident", [
    (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"), (["v=STSv1; id=abc", "v=STSv1; id=def"], None),
    (["v=STSv1; id=bad-id!"], None), (["v=spf1 -all"], None), ([], None),
])
def test_mta_sts_txt(records: list[str], ident: str | None) -> None:
    assert mtasts.parse_txt(records) == ident


def test_mta_sts_policy_round_trip_and_errors() -> None:
    text = mtasts.build_policy("enforce", ["mail.a.test.", "*.b.test"], 86400)
    assert mtasts.parse_policy(text) == mtasts.Policy("enforce", ("mail.a.test", "*.b.test"), 86400)
    assert mtasts.parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").max_age == 31557600
    for bad in ("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", "version: STSv1\nmode: enforce\nmax_age: 1\n",
                "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", "version: STSv1\nmode: testing\nmx: a\n",
                "no colon here\n"):
        with pytest.raises(mtasts.PolicyError):
            mtasts.parse_policy(bad)
    assert mtasts.policy_id(text) != mtasts.policy_id(text.replace("86400", "86401"))

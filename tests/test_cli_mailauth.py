"""``run.py dkim`` and ``run.py dns`` through the real entry point, as an administrator types them."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers.server import cli_runner


@pytest.fixture
def cli(tmp_path: Path):
    return cli_runner(tmp_path, 'hostname = "mail.a.test"\n')


def generations(cli, domain: str) -> dict[str, str]:
    r = cli("dkim", "list", domain)
    assert r.returncode == 0, r.stderr
    return {line.split("\t")[0]: line.split("\t")[1] for line in r.stdout.splitlines() if "\t" in line}


def test_domain_creation_makes_keys_and_rotation_takes_two_steps(cli, tmp_path: Path) -> None:
    r = cli("domain", "add", "a.test")
    assert r.returncode == 0 and "DKIM keys for a.test" in r.stdout and "run.py dns a.test" in r.stdout
    [(first, state)] = generations(cli, "a.test").items()
    assert state == "active"
    r = cli("user", "add", "x@b.test", "--password", "pw")          # a domain made by its first user
    assert r.returncode == 0 and "DKIM keys for b.test" in r.stdout
    assert "DKIM keys" not in cli("user", "add", "y@b.test", "--password", "pw").stdout

    r = cli("dkim", "rotate", "a.test")
    assert r.returncode == 0 and "run.py dkim publish a.test" in r.stdout
    second = r.stdout.split("\t")[0]
    assert generations(cli, "a.test") == {first: "active", second: "pending"}
    r = cli("dkim", "rotate", "a.test")
    assert r.returncode == 1 and "already has a pending key generation" in r.stderr
    r = cli("dkim", "publish", "a.test", first)
    assert r.returncode == 1 and "not pending" in r.stderr
    assert cli("dkim", "publish", "a.test", second).returncode == 0
    assert generations(cli, "a.test") == {first: "retired", second: "active"}
    keydir = tmp_path / "data" / "keys" / "dkim" / "a.test"
    assert all(p.stat().st_mode & 0o077 == 0 for p in [keydir, *keydir.iterdir()])


def test_unknown_generation_and_bad_domain(cli) -> None:
    cli("domain", "add", "a.test")
    r = cli("dkim", "publish", "a.test", "nosuch")
    assert r.returncode == 1 and "no key generation" in r.stderr
    r = cli("dkim", "list", "../etc")
    assert r.returncode == 1 and "not a domain name" in r.stderr


def test_dns_prints_a_loadable_zone_with_every_record(cli) -> None:
    import json

    import dns.zone
    cli("domain", "add", "a.test")
    r = cli("dns", "a.test")
    assert r.returncode == 0, r.stderr
    zone = dns.zone.from_text(r.stdout, origin="a.test.", relativize=False, check_origin=False)
    got = {(str(name), dns.rdatatype.to_text(rds.rdtype)) for name, node in zone.nodes.items() for rds in node}
    [(gen, _)] = generations(cli, "a.test").items()
    assert got == {
        ("a.test.", "MX"), ("a.test.", "TXT"), ("mail.a.test.", "TXT"), (f"{gen}-rsa._domainkey.a.test.", "TXT"),
        (f"{gen}-ed._domainkey.a.test.", "TXT"), ("_dmarc.a.test.", "TXT"), ("_submissions._tcp.a.test.", "SRV"),
        ("_submission._tcp.a.test.", "SRV"), ("_imaps._tcp.a.test.", "SRV"), ("_imap._tcp.a.test.", "SRV"),
        ("autoconfig.a.test.", "CNAME"), ("autodiscover.a.test.", "CNAME"), ("_mta-sts.a.test.", "TXT"),
        ("mta-sts.a.test.", "CNAME"), ("_smtp._tls.a.test.", "TXT")}
    new = cli("dkim", "rotate", "a.test").stdout.split("\t")[0]
    assert f"{new}-rsa._domainkey.a.test." in cli("dns", "a.test").stdout      # pending: publish it now
    records = json.loads(cli("dns", "a.test", "--json").stdout)["records"]
    assert {r["type"] for r in records} == {"MX", "TXT", "SRV", "CNAME"}
    r = cli("dns", "elsewhere.test")
    assert r.returncode == 1 and "not a local domain" in r.stderr

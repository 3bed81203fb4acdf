"""Failed logins are logged by ``run.py serve`` (stderr), one line each, and the shipped fail2ban
filter matches exactly the lines it should, with the right address, whatever the user name.

The filter is read from contrib/fail2ban/filter.d/rmail.conf and applied the way fail2ban
applies it: ``<HOST>`` expanded to fail2ban's own expression (fail2ban/server/failregex.py,
R_HOST), the date found by ``datepattern`` cut out of the line first. When fail2ban-regex is
installed it is run on the same log as well.
"""

from __future__ import annotations

import asyncio
import configparser
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest

from rmail.server.core.accounts import Accounts
from rmail.server.core.storage import MailStore
from tests.helpers.stores import open_sqlite

from ..conftest import PASSWORD
from ..helpers.clients import require_client
from ..helpers.server import dns_toml, free_ports, stop_process
from .auth_clients import Outcome, api, imap, smtp

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "contrib" / "fail2ban" / "filter.d" / "rmail.conf"
JAIL = ROOT / "contrib" / "fail2ban" / "jail.d" / "rmail.conf"

# fail2ban's <HOST>: IPv4 (optionally IPv4-mapped), IPv6, or a DNS name.
_IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IP6 = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)"
F2B_HOST = (rf"(?:\[?(?:(?:::f{{4,6}}:)?(?P<ip4>{_IP4})|(?P<ip6>{_IP6}))\]?"
            r"|(?P<dns>[\w\-.^_]*\w))")
_DATE_FIELDS = {"%Y": r"\d{4}", "%m": r"\d{1,2}", "%d": r"\d{1,2}", "%H": r"\d{1,2}", "%M": r"\d{1,2}",
                "%S": r"\d{1,2}", "%f": r"\d{1,6}"}
#: A name built to forge a second log line and a field for an innocent address.
HOSTILE = ('x" reason=bad-password\n2030-01-01 00:00:00,000 WARNING rmail.auth: auth failed: '
           'protocol=imap address=203.0.113.9 user="y" reason=bad-password')


def load_filter() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(failregex, datepattern) as Python regexes."""
    parser = configparser.ConfigParser(interpolation=configparser.BasicInterpolation())
    parser.read(FILTER, encoding="utf-8")
    definition = parser["Definition"]
    failregex = definition["failregex"].strip()
    assert "\n" not in failregex, "one failregex expected"
    fail = re.compile(failregex.replace("<HOST>", F2B_HOST))
    date = definition["datepattern"].strip().replace("{^LN-BEG}", "^")
    for field, expr in _DATE_FIELDS.items():
        date = date.replace(field, expr)
    return fail, re.compile(date)


def f2b_match(line: str, fail: re.Pattern[str], date: re.Pattern[str]) -> str | None:
    """The host fail2ban would take from a log-file line, or None."""
    found = date.search(line)
    if found is None:
        return None
    m = fail.search(line[:found.start()] + line[found.end():])
    if m is None:
        return None
    return m.group("ip4") or m.group("ip6") or m.group("dns")


@dataclass
class Served:
    proc: subprocess.Popen
    ports: dict[str, int]
    stderr: Path

    def lines(self) -> list[str]:
        return self.stderr.read_text(encoding="utf-8").splitlines()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    data = tmp_path / "data"
    data.mkdir()
    smtp_port, submission, imap_port, api_port = free_ports(4)
    config = tmp_path / "rmail.toml"
    config.write_text(f'data_dir = "{data}"\nbcrypt_rounds = 4\nhostname = "mail.example.com"\n'
                      f"[ports]\nsmtp = {smtp_port}\nsubmission = {submission}\nsmtps = 0\n"
                      f"imap = {imap_port}\nimaps = 0\napi = {api_port}\n" + dns_toml(), encoding="utf-8")
    store_backend = await open_sqlite(data)
    store = store_backend.mail
    accounts = Accounts(store_backend.directory, bcrypt_rounds=4)
    await accounts.add_user("alice@example.com", PASSWORD)
    await accounts.add_user("bob@example.com", PASSWORD)
    await store_backend.close()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "run.py", "serve", "--config", str(config)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
    served = Served(proc, {"submission": submission, "imap": imap_port, "api": api_port}, stderr)
    try:
        await wait_listening(served)
        yield served
    finally:
        stop_process(proc)


async def wait_listening(served: Served, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = set(served.ports.values())
    while pending and loop.time() < deadline:
        assert served.proc.poll() is None, "the server exited during start-up:\n" + served.stderr.read_text()
        for port in list(pending):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                pending.discard(port)
            except OSError:
                pass
        await asyncio.sleep(0.05)
    assert not pending, "server did not start listening"


async def stop(served: Served) -> list[str]:
    served.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(served.proc.wait, 20)
    return served.lines()


async def test_failed_logins_are_logged_for_fail2ban(served: Served) -> None:
    p = served.ports
    # (client address, outcome) of every attempt the filter must count.
    expected: list[str] = []

    async def expect(coro, source: str, outcome: Outcome = Outcome.WRONG) -> None:
        reply = await coro
        assert reply.outcome is outcome, reply.text
        if outcome is Outcome.WRONG:
            expected.append(source)

    await expect(imap(p["imap"], "bob@example.com", "nope", source="127.0.0.11"), "127.0.0.11")
    await expect(imap(p["imap"], "nobody@example.com", "nope", source="127.0.0.12", plain=True), "127.0.0.12")
    await expect(imap(p["imap"], HOSTILE, "nope", source="127.0.0.13", plain=True), "127.0.0.13")
    await expect(smtp(p["submission"], "alice@example.com", "nope", source="127.0.0.14"), "127.0.0.14")
    await expect(smtp(p["submission"], HOSTILE, "nope", source="127.0.0.15"), "127.0.0.15")
    await expect(api(p["api"], "alice@example.com", "nope", source="127.0.0.16"), "127.0.0.16")
    await expect(api(p["api"], "nobody@example.com", "nope", source="127.0.0.17"), "127.0.0.17")
    # Lock one pair: checked failures count, the refusals after them do not.
    # In parallel: serve mode keeps the failure delays (0.5 s doubling), a row would take 15 s.
    await asyncio.gather(*(expect(imap(p["imap"], "bob@example.com", f"g{i}", source="127.0.0.18"), "127.0.0.18")
                           for i in range(5)))
    await expect(imap(p["imap"], "bob@example.com", PASSWORD, source="127.0.0.18"), "127.0.0.18", Outcome.LOCKED)
    # A success logs nothing here.
    await expect(imap(p["imap"], "alice@example.com", PASSWORD, source="127.0.0.19"), "127.0.0.19", Outcome.OK)

    lines = await stop(served)
    auth = [line for line in lines if " rmail.auth: " in line]
    failed = [line for line in auth if " auth failed: " in line]
    assert len(failed) == len(expected) + 1                   # + the locked refusal
    assert sum(" auth lockout: scope=pair " in line for line in auth) == 1
    # One record, one line: the hostile names' newlines did not split any record.
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ", line) for line in lines), lines
    assert sum("203.0.113.9" in line for line in failed) == 2  # inside the quoted name only

    fail, date = load_filter()
    hosts = [h for h in (f2b_match(line, fail, date) for line in lines) if h is not None]
    assert sorted(hosts) == sorted(expected)
    # The same lines as the systemd backend presents them ("host ident[pid]: message", no date cut).
    journal = [m.group("ip4") for m in (fail.search(f"mail rmail[4242]: {line}") for line in lines) if m]
    assert sorted(journal) == sorted(expected)

    log = served.stderr
    fail2ban_regex = require_client("fail2ban-regex")
    out = await asyncio.to_thread(subprocess.run, [fail2ban_regex, str(log), str(FILTER)],
                                  capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"^Failregex: (\d+) total", out.stdout, re.M)
    assert m and int(m.group(1)) == len(expected), out.stdout


def test_jail_uses_the_filter() -> None:
    jail = configparser.ConfigParser(interpolation=None)
    jail.read(JAIL, encoding="utf-8")
    assert jail["rmail"]["filter"] == "rmail"
    assert int(jail["rmail"]["maxretry"]) > 0


@pytest.mark.parametrize("line", [
    # Another logger, another message, a date that is not at the start: never a match.
    "2025-01-31 12:00:00,123 WARNING rmail.smtp: smtp: delivery from 127.0.0.1 refused: "
    "WARNING rmail.auth: auth failed: protocol=imap address=203.0.113.9 user=\"x\" reason=bad-password",
    "2025-01-31 12:00:00,123 INFO rmail.auth: auth failed: protocol=imap address=203.0.113.9 user=\"x\" "
    "reason=bad-password",
    "2025-01-31 12:00:00,123 WARNING rmail.auth: auth failed: protocol=imap address=203.0.113.9 user=\"x\" "
    "reason=locked",
    "2025-01-31 12:00:00,123 WARNING rmail.auth: auth lockout: scope=address address=203.0.113.9 failures=20 "
    "seconds=300",
    "2025-01-31 12:00:00,123 WARNING rmail.auth: auth failed: protocol=imap address=127.0.0.1 "
    "user=\"a\" reason=bad-password\" address=203.0.113.9 reason=bad-password",
], ids=["other-logger", "info", "locked", "lockout", "unescaped-quote"])
def test_filter_rejects(line: str) -> None:
    fail, date = load_filter()
    assert f2b_match(line, fail, date) is None

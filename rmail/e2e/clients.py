"""Independent stdlib clients for the three protocols, as SPEC.md Part 1 shows them used.

Nothing here imports rmail's servers: a check built on these passes only if a real client
(smtplib, imaplib, http.client) gets what the SPEC promises over a real socket.
"""

from __future__ import annotations

import http.client
import imaplib
import json
import re
import smtplib
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from email.utils import formatdate, make_msgid
from typing import Any

from .target import Target, User

#: Seconds any socket operation may take; a hung server fails the check instead of the run.
TIMEOUT = 15.0
EHLO_NAME = "client.example.com"


def message(sender: str, to: str, subject: str, body: str = "rmail end-to-end check\r\n") -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid('e2e')}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


# -- SMTP --------------------------------------------------------------------------------------

def smtp(target: Target, protocol: str, *, starttls: bool = True) -> smtplib.SMTP:
    """Connected and greeted (EHLO); STARTTLS done when TLS is configured and ``starttls``.

    ``protocol`` is a listener name: "smtp" (25), "submission" (587) or "smtps" (465).
    """
    port = target.port(protocol)
    client: smtplib.SMTP
    if protocol == "smtps":
        client = smtplib.SMTP_SSL(target.host, port, timeout=TIMEOUT, context=target.ssl_context(),
                                  local_hostname=EHLO_NAME)
    else:
        client = smtplib.SMTP(target.host, port, timeout=TIMEOUT, local_hostname=EHLO_NAME)
    try:
        client.ehlo(EHLO_NAME)
        if protocol != "smtps" and starttls and target.tls:
            client.starttls(context=target.ssl_context())
            client.ehlo(EHLO_NAME)
    except BaseException:
        client.close()
        raise
    return client


def smtp_send(target: Target, protocol: str, sender: str, recipients: list[str], data: bytes, *,
              login: User | None = None) -> None:
    """One complete transaction; raises smtplib's errors on any refusal."""
    client = smtp(target, protocol)
    try:
        if login is not None:
            client.login(login.address, login.password)
        refused = client.sendmail(sender, recipients, data)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        client.quit()
    finally:
        client.close()


def auth_mechanisms(client: smtplib.SMTP) -> set[str]:
    """The SASL mechanisms of the last EHLO's AUTH line (empty when AUTH is not offered)."""
    if not client.has_extn("auth"):
        return set()
    return set(client.esmtp_features["auth"].upper().split())


# -- IMAP --------------------------------------------------------------------------------------

def imap(target: Target, protocol: str = "imap", *, starttls: bool = True) -> imaplib.IMAP4:
    """Connected (STARTTLS done on 143 when TLS is configured and ``starttls``), not logged in."""
    port = target.port(protocol)
    client: imaplib.IMAP4
    if protocol == "imaps":
        client = imaplib.IMAP4_SSL(target.host, port, ssl_context=target.ssl_context(), timeout=TIMEOUT)
    else:
        client = imaplib.IMAP4(target.host, port, timeout=TIMEOUT)
        if starttls and target.tls:
            try:
                client.starttls(ssl_context=target.ssl_context())
            except BaseException:
                client.shutdown()
                raise
    return client


def imap_login(target: Target, user: User, protocol: str = "imap") -> imaplib.IMAP4:
    client = imap(target, protocol)
    try:
        client.login(user.address, user.password)
    except BaseException:
        client.shutdown()
        raise
    return client


def capabilities(client: imaplib.IMAP4) -> set[str]:
    """A fresh CAPABILITY (imaplib caches the greeting's list)."""
    typ, data = client.capability()
    if typ != "OK":
        raise imaplib.IMAP4.error(f"CAPABILITY failed: {data!r}")
    return {c.upper() for c in data[0].decode().split()}


def imap_ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    if typ != "OK":
        raise AssertionError(f"IMAP command failed: {typ} {data!r}")
    return data


def uid_search(client: imaplib.IMAP4, *criteria: str) -> list[int]:
    data = imap_ok(client.uid("SEARCH", *criteria))
    return [int(x) for x in data[0].split()] if data and data[0] else []


def fetch_body(client: imaplib.IMAP4, uid: int) -> bytes:
    """BODY.PEEK[] of one message by UID (does not set \\Seen)."""
    data = imap_ok(client.uid("FETCH", str(uid), "(BODY.PEEK[])"))
    for item in data:
        if isinstance(item, tuple):
            return item[1]
    raise AssertionError(f"no body in FETCH response: {data!r}")


_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def fetch_flags(client: imaplib.IMAP4, uid: int) -> set[str]:
    data = imap_ok(client.uid("FETCH", str(uid), "(FLAGS)"))
    for item in data:
        raw = item[0] if isinstance(item, tuple) else item
        if raw and (m := _FLAGS.search(raw)):
            return set(m.group(1).decode().split())
    raise AssertionError(f"no FLAGS in FETCH response: {data!r}")


def quote_mailbox(name: str) -> str:
    """An IMAP quoted string for an ASCII mailbox name (imaplib sends arguments as given)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- REST --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A tiny http.client wrapper for the REST API (one connection per request, like curl)."""

    def __init__(self, target: Target, token: str | None = None) -> None:
        self.target = target
        self.token = token

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Reply:
        conn = http.client.HTTPConnection(self.target.host, self.target.port("api"), timeout=TIMEOUT)
        hdrs = dict(headers or {})
        payload: bytes | None = raw
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def login(self, user: User) -> dict[str, Any]:
        """POST /auth/login with the SPEC's username + domain shape; keeps the token."""
        reply = self.request("POST", "/auth/login",
                             {"username": user.local, "password": user.password, "domain": user.domain},
                             auth=False)
        if reply.status != 200:
            raise AssertionError(f"login as {user.address} failed: {reply.status} {reply.body[:200]!r}")
        data = reply.json()
        self.token = data["token"]
        return data


def folder_path(name: str, *rest: str) -> str:
    """/folders/{name}/... with the name URL-encoded ("/" too: it is one path segment)."""
    return "/".join(["/folders", urllib.parse.quote(name, safe=""), *rest])


def port_open(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def peer_certificate(host: str, port: int, *, starttls: str | None = None) -> bytes:
    """The DER certificate a TLS listener presents (``starttls``: "smtp" or "imap" first)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if starttls == "smtp":
        with smtplib.SMTP(host, port, timeout=TIMEOUT, local_hostname=EHLO_NAME) as client:
            client.ehlo(EHLO_NAME)
            client.starttls(context=ctx)
            sock = client.sock
            assert isinstance(sock, ssl.SSLSocket)
            return sock.getpeercert(binary_form=True) or b""
    if starttls == "imap":
        client = imaplib.IMAP4(host, port, timeout=TIMEOUT)
        try:
            client.starttls(ssl_context=ctx)
            sock = client.sock
            assert isinstance(sock, ssl.SSLSocket)
            return sock.getpeercert(binary_form=True) or b""
        finally:
            client.shutdown()
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw) as sock:
            return sock.getpeercert(binary_form=True) or b""

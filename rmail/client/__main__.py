"""``python -m rmail.client``: parse flags, then run MailClientApp with the IMAP/SMTP backend."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rmail.client.accounts import AccountStore, default_ports, default_security
from rmail.client.app import MailClientApp
from rmail.client.backend import ImapSmtpBackend
from rmail.client.model import AccountSettings, Security
from rmail.client.tlstrust import normalize_fingerprint


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _fingerprint(text: str) -> str:
    try:
        return normalize_fingerprint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rmail.client",
        description="Terminal IMAP/SMTP mail client. The password is asked in the app or read from $RMAIL_PASSWORD.",
        epilog="Defaults suit a local rmail run as a normal user: IMAP 10143 and SMTP 10587 without TLS.",
    )
    p.add_argument("--server", default="localhost", help="IMAP/SMTP host (default: localhost)")
    p.add_argument("--imap-port", type=_port, help="IMAP port (default: 143/993, +10000 for a local server)")
    p.add_argument("--smtp-port", type=_port, help="SMTP submission port (default: 587/465, +10000 for a local server)")
    p.add_argument(
        "--security",
        choices=[s.value for s in Security],
        help="starttls, tls (implicit) or none (default: none for localhost, starttls otherwise)",
    )
    p.add_argument("--user", default="", help="login name, usually the email address")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--insecure", action="store_true", help="do not verify the server certificate at all")
    trust.add_argument("--fingerprint", type=_fingerprint, default=None, help="trust the certificate with this SHA-256 fingerprint")
    p.add_argument("--no-remember", action="store_true", help="do not remember this account")
    return p


def settings_from_args(args: argparse.Namespace, remembered: Sequence[AccountSettings] = ()) -> AccountSettings:
    """Flags first; a remembered account with the same user and server fills the gaps."""
    security = Security(args.security) if args.security else None
    known = next((a for a in remembered if a.user == args.user and a.server == args.server), None)
    if security is None:
        security = known.security if known else default_security(args.server)
    imap_default, smtp_default = default_ports(args.server, security)
    if known and known.security is security:
        imap_default, smtp_default = known.imap_port, known.smtp_port
    fingerprint = args.fingerprint or (known.fingerprint if known else "") or ""
    return AccountSettings(
        server=args.server,
        imap_port=args.imap_port or imap_default,
        smtp_port=args.smtp_port or smtp_default,
        security=security,
        user=args.user,
        fingerprint=fingerprint,
        insecure=args.insecure,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = AccountStore.default()
    remembered = store.load()
    if not args.user and remembered and args.server == "localhost":
        # No flags at all: start from the most recently used account.
        settings = remembered[0]
    else:
        settings = settings_from_args(args, remembered)
    app = MailClientApp(
        ImapSmtpBackend,
        settings=settings,
        password=os.environ.get("RMAIL_PASSWORD") or None,
        accounts=None if args.no_remember else store,
    )
    try:
        app.run()
    finally:
        app.close_backend()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())

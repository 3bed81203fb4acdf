"""Signing mail that rmail's users send: one RSA and one Ed25519 DKIM signature (RFC 6376,
RFC 8463) with the active keys of the sender's domain, computed on a worker thread.

Mail is signed once, at submission (SMTP AUTH or the REST API), before delivery splits it
into local copies and queue entries: local and remote recipients see the same signature,
and the queue sends the bytes it stored. A failure to sign (an unreadable key file) is
logged and the message goes out unsigned: refusing a user's mail over it would be worse.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from dkim import DKIMException

from ..dkimkeys import DkimKey, DkimKeys
from ..errors import RmailError
from . import dkim

__all__ = ["Signer"]

log = logging.getLogger("rmail.dkim")

#: RFC 6761 §6.4: names under .invalid never resolve, so no verifier could ever find a key
#: (``run.py diagnose`` uses such a domain; signing there would only leave keys behind).
NEVER_SIGN = (".invalid",)


class Signer:
    def __init__(self, keys: DkimKeys) -> None:
        self.keys = keys
        self._material: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def _key_material(self, key: DkimKey) -> bytes:
        ident = (key.domain, key.selector)
        with self._lock:
            cached = self._material.get(ident)
        if cached is None:
            cached = key.signing_key
            with self._lock:
                self._material[ident] = cached
        return cached

    def sign_blocking(self, data: bytes, domain: str) -> bytes:
        """``data`` with the DKIM-Signature fields on top (or unchanged, see the module doc)."""
        if domain.lower().endswith(NEVER_SIGN):
            return data
        try:
            keys = self.keys.signing_keys(domain)
            headers = dkim.sign(data, keys, [self._key_material(k) for k in keys])
        except (OSError, ValueError, RmailError, DKIMException) as exc:
            log.error("dkim: cannot sign for %s, sending unsigned: %s", domain, exc)
            return data
        return headers + data

    async def sign(self, data: bytes, domain: str) -> bytes:
        """``sign_blocking`` off the event loop (a 25 MiB body takes a while to hash)."""
        return await asyncio.to_thread(self.sign_blocking, data, domain)

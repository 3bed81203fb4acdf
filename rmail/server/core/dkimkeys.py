"""DKIM signing keys per domain, and their rotation (RFC 6376 §3.6.1 selectors).

A domain has *generations* of keys; each generation is one RSA-2048 key and one Ed25519 key
(RFC 8463 recommends signing with both while verifiers catch up), published under two
selectors, ``<generation>-rsa`` and ``<generation>-ed``. A generation is

- ``pending``: made by ``rotate``; its records are printed by ``run.py dns`` so they can be
  published, but nothing is signed with it yet;
- ``active``: the one generation that signs;
- ``retired``: replaced by ``publish``; kept so its records can stay published while mail
  signed with it is still in transit, and so ``run.py dkim list`` can show it.

The first generation of a domain is made active at once (on the first signature, the first
``run.py dns``, or when the domain is created): there is nothing to switch over from.

Keys are secrets, kept by the backend's ``KeyStore`` (``backend.dkim_keys``). The embedded
store's ``FileKeyStore`` keeps them in ``data_dir/keys/dkim/<domain>/`` with the directory
0700 and every file 0600, written to a temporary file and renamed into place so a crash never
leaves half a key. With ``[store] url`` they live in PostgreSQL (core/postgres/dkimkeys.py),
so every node signs with the same keys; that store saves conditionally (``save_if``), so
nodes changing one domain at once never overwrite each other: the loser looks again. The
methods here block (key generation, files, the database): call them from a worker thread.
"""

from __future__ import annotations

import base64
import enum
import json
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .errors import AlreadyExists, InvalidInput, NotFound, TemporaryFailure

__all__ = ["ConditionalKeyStore", "DkimKey", "Generation", "KeyState", "KeyStore", "FileKeyStore", "DkimKeys",
           "key_domain"]

#: RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits and SHOULD use 2048.
RSA_BITS = 2048
#: Key algorithms of one generation and the selector suffix each is published under.
SUFFIXES = {"rsa": "rsa", "ed25519": "ed"}
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
_GENERATION = re.compile(r"^[a-z0-9]{1,40}$")
#: Tries of one change when other processes keep saving the domain in between (each one
#: loses only to a save that committed, so running out means something is wrong).
SAVE_ATTEMPTS = 5


class KeyState(str, enum.Enum):
    PENDING = "pending"     #: made by rotate: publish its records, then ``run.py dkim publish``
    ACTIVE = "active"       #: signs outgoing mail
    RETIRED = "retired"     #: signed mail in the past; its records may be removed after a while


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One private key and what is published for it."""

    domain: str            #: A-label form, the DKIM d= value
    selector: str          #: the DKIM s= value
    algorithm: str         #: "rsa" or "ed25519"
    private_pem: bytes     #: PKCS#8 PEM

    @property
    def dns_name(self) -> str:
        """RFC 6376 §3.6.2.1: ``<selector>._domainkey.<domain>``."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def public_key(self) -> str:
        """The p= value: base64 SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), the raw 32-byte
        key for Ed25519 (RFC 8463 §4)."""
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        public = private.public_key()
        if self.algorithm == "ed25519":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(raw).decode("ascii")

    @property
    def dns_value(self) -> str:
        """The TXT record value (RFC 6376 §3.6.1)."""
        return f"v=DKIM1; k={self.algorithm}; p={self.public_key}"

    @property
    def signing_key(self) -> bytes:
        """The private key in the form dkimpy's ``sign`` takes: PEM (PKCS#1) for RSA, the
        base64 32-byte seed for Ed25519."""
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        if self.algorithm == "ed25519":
            seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
            return base64.b64encode(seed)
        return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption())


@dataclass(frozen=True, slots=True)
class Generation:
    name: str
    state: KeyState
    created: int                       #: Unix time
    keys: tuple[DkimKey, ...]          #: RSA first, then Ed25519
    changed: int = 0                   #: Unix time of the last state change

    @property
    def selectors(self) -> tuple[str, ...]:
        return tuple(k.selector for k in self.keys)


def key_domain(domain: str) -> str:
    """The domain in A-label form (DKIM d=, and the directory name).

    Raises:
        InvalidInput: not a host name.
    """
    try:
        ascii_name = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput(f"not a domain name: {domain[:80]!r}") from None
    if not _DOMAIN.match(ascii_name):
        raise InvalidInput(f"not a domain name: {domain[:80]!r}")
    return ascii_name


class KeyStore(Protocol):
    """Where generations are kept. Implementations are thread-safe and write atomically."""

    def load(self, domain: str) -> list[Generation]:
        """Every generation of ``domain`` (oldest first); [] when it has none."""

    def save(self, domain: str, generations: list[Generation]) -> None:
        """Replace the domain's generations (new keys written before the list names them)."""

    def version(self, domain: str) -> object:
        """A value that changes whenever ``save`` changes the domain (for caches)."""

    def delete(self, domain: str) -> None:
        """Forget the domain's keys."""


@runtime_checkable
class ConditionalKeyStore(KeyStore, Protocol):
    """A KeyStore shared by several processes that may change one domain at once (nodes on
    one database): a change is saved only onto the version it was made from."""

    def save_if(self, domain: str, generations: list[Generation], expected: object) -> bool:
        """``save`` only if ``version(domain)`` still equals ``expected`` (None: no keys);
        False, with nothing written, when another process saved or deleted meanwhile."""


class FileKeyStore:
    """``root/<domain>/state.json`` plus one PEM file per key, 0600 in 0700 directories."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, domain: str) -> Path:
        return self.root / key_domain(domain)

    def load(self, domain: str) -> list[Generation]:
        d = self._dir(domain)
        try:
            state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        name = key_domain(domain)
        out = []
        for g in state["generations"]:
            if not _GENERATION.match(g["name"]):
                continue        # never build a path from a name we did not write
            keys = tuple(DkimKey(name, f"{g['name']}-{SUFFIXES[alg]}", alg,
                                 (d / f"{g['name']}-{SUFFIXES[alg]}.pem").read_bytes())
                         for alg in SUFFIXES)
            out.append(Generation(g["name"], KeyState(g["state"]), int(g["created"]), keys, int(g.get("changed", 0))))
        return out

    def save(self, domain: str, generations: list[Generation]) -> None:
        d = self._dir(domain)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        d.mkdir(exist_ok=True, mode=0o700)
        for g in generations:
            for key in g.keys:
                path = d / f"{key.selector}.pem"
                if not path.exists():
                    _write_secret(path, key.private_pem)
        state = {"generations": [{"name": g.name, "state": g.state.value, "created": g.created,
                                  "changed": g.changed} for g in generations]}
        _write_secret(d / "state.json", json.dumps(state, indent=1).encode())

    def version(self, domain: str) -> object:
        try:
            st = (self._dir(domain) / "state.json").stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def delete(self, domain: str) -> None:
        d = self._dir(domain)
        if not d.is_dir():
            return
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


def _write_secret(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)       # the rename itself is durable before anyone relies on the key
    finally:
        os.close(dfd)


def _new_key(domain: str, selector: str, algorithm: str) -> DkimKey:
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return DkimKey(domain, selector, algorithm, pem)


class DkimKeys:
    """The key service: what signs for a domain, and the rotation steps. Blocking."""

    def __init__(self, store: KeyStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[object, list[Generation]]] = {}

    def generations(self, domain: str) -> list[Generation]:
        """Every generation, oldest first (no keys are made)."""
        name = key_domain(domain)
        with self._lock:
            return list(self._load(name)[1])

    def _load(self, name: str) -> tuple[object, list[Generation]]:
        """(the store's version, the generations); read again only when the version moved."""
        version = self.store.version(name)
        cached = self._cache.get(name)
        if cached is not None and cached[0] == version and version is not None:
            return version, cached[1]
        generations = self.store.load(name)
        self._cache[name] = (version, generations)
        return version, generations

    def _change(self, name: str, change: Callable[[list[Generation]], list[Generation] | None]) -> list[Generation]:
        """Save what ``change`` makes of the domain's generations (None: nothing to save) and
        return the generations as they are then. Called with the lock held.

        On a ConditionalKeyStore the save is made only onto the version ``change`` saw; when
        another process saved first, ``change`` runs again on what that one saved (and may
        find nothing left to do, or raise). A plain KeyStore saves unconditionally.

        Raises:
            TemporaryFailure: the domain kept changing under every attempt.
        """
        for _ in range(SAVE_ATTEMPTS):
            version, generations = self._load(name)
            updated = change(list(generations))
            if updated is None:
                return generations
            self._cache.pop(name, None)
            if not isinstance(self.store, ConditionalKeyStore):
                self.store.save(name, updated)
                return updated
            if self.store.save_if(name, updated, version):
                return updated
        raise TemporaryFailure(f"the DKIM keys of {name} kept changing while being saved; try again")

    def _new_generation(self, name: str, existing: list[Generation], state: KeyState) -> Generation:
        now = int(self.clock())
        stamp = time.strftime("%Y%m%d", time.gmtime(now))
        taken = {g.name for g in existing}
        label = next(f"{stamp}{chr(c)}" for c in range(ord("a"), ord("z") + 1) if f"{stamp}{chr(c)}" not in taken)
        keys = tuple(_new_key(name, f"{label}-{suffix}", alg) for alg, suffix in SUFFIXES.items())
        return Generation(label, state, now, keys, now)

    def ensure(self, domain: str) -> list[Generation]:
        """The domain's generations, making a first, active one when it has none. Nodes that
        make it at once on a shared store end with one of theirs (see ``_change``)."""
        name = key_domain(domain)

        def first(generations: list[Generation]) -> list[Generation] | None:
            if any(g.state is KeyState.ACTIVE for g in generations):
                return None
            return [*generations, self._new_generation(name, generations, KeyState.ACTIVE)]
        with self._lock:
            return list(self._change(name, first))

    def signing_keys(self, domain: str) -> tuple[DkimKey, ...]:
        """The keys to sign with now (the active generation's), made on first use."""
        active = [g for g in self.ensure(domain) if g.state is KeyState.ACTIVE]
        return active[-1].keys

    def published(self, domain: str) -> list[Generation]:
        """The generations whose records must be in DNS: active and pending."""
        return [g for g in self.ensure(domain) if g.state is not KeyState.RETIRED]

    def published_if_any(self, domain: str) -> list[Generation]:
        """``published`` without making keys (read-only callers such as ``run.py diagnose``)."""
        return [g for g in self.generations(domain) if g.state is not KeyState.RETIRED]

    def rotate(self, domain: str) -> Generation:
        """Make a pending generation; signing stays with the active one until ``publish``.

        Raises:
            AlreadyExists: a pending generation exists already (publish or drop it first).
        """
        name = key_domain(domain)
        self.ensure(name)

        def add_pending(generations: list[Generation]) -> list[Generation]:
            pending = [g for g in generations if g.state is KeyState.PENDING]
            if pending:
                raise AlreadyExists(f"{name} already has a pending key generation {pending[0].name}: "
                                    f"publish its records, then run: dkim publish {name} {pending[0].name}")
            return [*generations, self._new_generation(name, generations, KeyState.PENDING)]
        with self._lock:
            return self._change(name, add_pending)[-1]

    def publish(self, domain: str, generation: str) -> Generation:
        """Declare a pending generation's records published: it signs from now on, and the
        previously active one is retired.

        Raises:
            NotFound: no such generation.  InvalidInput: it is not pending.
        """
        name = key_domain(domain)

        def switch(generations: list[Generation]) -> list[Generation]:
            target = next((g for g in generations if g.name == generation), None)
            if target is None:
                raise NotFound(f"{name} has no key generation {generation!r}")
            if target.state is not KeyState.PENDING:
                raise InvalidInput(f"key generation {generation} of {name} is {target.state.value}, not pending")
            now = int(self.clock())
            return [replace(g, state=KeyState.RETIRED, changed=now) if g.state is KeyState.ACTIVE
                    else replace(g, state=KeyState.ACTIVE, changed=now) if g.name == generation
                    else g for g in generations]
        with self._lock:
            updated = self._change(name, switch)
        return next(g for g in updated if g.name == generation)

    def forget(self, domain: str) -> None:
        name = key_domain(domain)
        with self._lock:
            self.store.delete(name)
            self._cache.pop(name, None)

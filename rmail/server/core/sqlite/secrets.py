"""Shared secrets of the embedded store: one file each under ``data_dir/keys`` (0600 in a 0700
directory), the secret in hex. A file survives restarts, so what it signs (API tokens) does too."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from ..errors import InvalidInput

__all__ = ["load_or_create_secret", "remove_secret"]

_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")


def secret_path(keys_dir: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise ValueError(f"bad secret name {name!r}")
    return keys_dir / f"{name}.key"


def remove_secret(path: Path) -> None:
    """Remove the secret's file and make the removal durable (blocking): a key revoked and
    acknowledged must stay revoked after a crash."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_secret(path: Path, create: Callable[[], bytes]) -> bytes:
    """Read the secret, creating it with ``create()`` on first use (blocking).

    Raises:
        InvalidInput: the file exists but does not hold a secret (not hex, or empty).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(create().hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if not value:
        raise InvalidInput(f"{path}: not a valid key; remove the file to generate a new one")
    return value

"""Message bytes: one immutable file per message under ``blobs/``, named by a random id.

Names never derive from anything a client sent. A blob is written to a temporary file and
renamed into place on an I/O thread; the group commit then flushes every blob of its batch in
one ``syncfs`` (one journal commit for the whole batch, instead of a file and a directory fsync
per message) before it commits the rows. Where ``syncfs`` is missing, each file and directory
is fsynced instead. Files no committed row references are removed at start-up (``recover``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import asyncio
import secrets
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable, Iterator

from ..errors import NotFound
from ..storage.body import CHUNK, BodyTruncated


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    return fn


_SYNCFS = _load_syncfs()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def private_dir(path: Path) -> None:
    """Narrow a directory rmail owns to 0700 (one created by an older version, or by hand,
    may be 0755: message files inside are 0600, but their names and count would show)."""
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, 0o700)


_ID = re.compile(r"^[0-9a-f]{32}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tmp = root / "tmp"
        self._tmp.mkdir(exist_ok=True, mode=0o700)
        # The shard dirs too (at most 256): with them 0700, message files are out of reach
        # whatever their own mode, and no start-up has to stat every message file.
        for d in (root, self._tmp, *(e for e in root.iterdir() if len(e.name) == 2 and e.is_dir())):
            private_dir(d)

    def path(self, blob_id: str) -> Path:
        if not _ID.match(blob_id):
            raise ValueError("bad blob id")
        return self.root / blob_id[:2] / blob_id

    def write(self, data: bytes) -> str:
        """Write ``data`` as a new blob (not yet flushed: ``flush`` it before committing a row
        that references it). Runs on one of the store's I/O threads, never on the loop."""
        blob_id = secrets.token_hex(16)
        self.write_as(blob_id, data)
        return blob_id

    def write_as(self, blob_id: str, data: bytes) -> None:
        """``write`` under a given id (``store copy`` keeps the source's ids); a failed write
        leaves no partial file."""
        final = self.path(blob_id)
        final.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = self._tmp / blob_id
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except BaseException:
            # A full disk (ENOSPC) must not leave a partial file taking the space it lacks.
            tmp.unlink(missing_ok=True)
            raise

    def flush(self, blob_ids: Iterable[str]) -> None:
        """Make the given blobs (contents and directory entries) durable.

        Raises:
            OSError: the filesystem reported a write error.
        """
        ids = list(blob_ids)
        if not ids:
            return
        if _SYNCFS is not None:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _SYNCFS(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            return
        for blob_id in ids:
            fd = os.open(self.path(blob_id), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in {self.path(b).parent for b in ids}:
            fsync_dir(directory)

    def read(self, blob_id: str) -> bytes:
        return self.path(blob_id).read_bytes()

    def remove(self, blob_id: str) -> None:
        try:
            self.path(blob_id).unlink()
        except FileNotFoundError:
            pass

    def all_ids(self) -> Iterator[str]:
        for shard in self.root.iterdir():
            if shard.is_dir() and len(shard.name) == 2:
                for f in shard.iterdir():
                    if _ID.match(f.name):
                        yield f.name

    def clear_tmp(self) -> int:
        n = 0
        for f in self._tmp.iterdir():
            f.unlink(missing_ok=True)
            n += 1
        return n


def _open(path: Path) -> tuple[int, int]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


def _pread(fd: int, offset: int, length: int) -> bytes:
    parts = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(parts)


class FileBody:
    """storage.MessageBody of one open blob file, read with ``os.pread`` on worker threads
    (never on the loop). Opened once, its size taken from that descriptor: an expunge that
    unlinks the file meanwhile cannot shorten what a reader announced."""

    __slots__ = ("fd", "size", "inline")

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.inline: bytes | None = None

    @classmethod
    async def open(cls, blobs: BlobStore, blob_id: str) -> FileBody:
        """Raises: NotFound: the file is gone (the message was expunged meanwhile)."""
        try:
            return cls(*await asyncio.to_thread(_open, blobs.path(blob_id)))
        except (FileNotFoundError, ValueError):
            raise NotFound("message no longer exists") from None

    def _span(self, start: int, length: int | None) -> int:
        return self.size - start if length is None else min(length, self.size - start)

    async def read(self, start: int = 0, length: int | None = None) -> bytes:
        want = self._span(start, length)
        data = await asyncio.to_thread(_pread, self.fd, start, want)
        if len(data) != want:
            raise BodyTruncated("message file shorter than its size")
        return data

    async def chunks(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        end = start + self._span(start, length)
        while start < end:
            chunk = await asyncio.to_thread(_pread, self.fd, start, min(CHUNK, end - start))
            if not chunk:
                raise BodyTruncated("message file shorter than its size")
            yield chunk
            start += len(chunk)

    async def close(self) -> None:
        await asyncio.to_thread(os.close, self.fd)

"""Backup and restore of a data dir as one tar.gz, safe to take while the server runs.

Consistency: the database is copied with SQLite's online backup API in a single step, which
reads one WAL snapshot, so the copy is exactly the store at one commit, whatever the server
writes meanwhile. Then the blob files that snapshot references are added. Blob files are
immutable and flushed before their row commits, so every one the snapshot names was on disk
when the snapshot was taken; one that is gone by the time it is copied was removed because its
message was deleted after the snapshot, and its rows are dropped from the copy (the archive
then holds the store as it was a moment later, for that message). Nothing else changes.

Archive layout, in this order: ``blobs/<xx>/<id>``, ``rmail.db``, ``keys/...``,
``config/<name>`` (the config file in use, if any) and ``manifest.json`` last: format, rmail version, counts, and the size
and SHA-256 of every other member. Restore checks every member against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import InvalidInput
from ..progress import Progress, no_progress

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024



def _version() -> str:
    from rmail import __version__
    return __version__


@dataclass
class Manifest:
    format: int
    version: str
    created: int
    counts: dict[str, int]
    files: dict[str, dict[str, object]] = field(default_factory=dict)
    config: str | None = None

    def to_json(self) -> bytes:
        return json.dumps({"format": self.format, "rmail_version": self.version, "created": self.created,
                           "counts": self.counts, "config": self.config, "files": self.files},
                          indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            return cls(int(raw["format"]), str(raw["rmail_version"]), int(raw["created"]),
                       {str(k): int(v) for k, v in raw["counts"].items()},
                       {str(k): dict(v) for k, v in raw["files"].items()}, raw.get("config"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidInput("the backup's manifest is damaged") from None


def _readonly_uri(path: Path) -> str:
    # Quoted: a "?", "#" or "%" in a directory name would otherwise end or bend the URI.
    return f"file:{urllib.parse.quote(str(path))}?mode=ro"


class _HashingReader:
    """A file wrapper that hashes what tarfile reads through it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.hash.update(data)
        return data


def snapshot_database(db_path: Path, dest: Path) -> None:
    """Copy the live database with the online backup API (one step: one consistent snapshot)
    into ``dest`` as a single self-contained file (no -wal beside it)."""
    src = sqlite3.connect(_readonly_uri(db_path), uri=True, timeout=10)
    try:
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _file_blobs(conn: sqlite3.Connection) -> list[str]:
    """Blobs whose bytes live in files (the others are rows of blob_data)."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM blobs WHERE NOT EXISTS (SELECT 1 FROM blob_data d WHERE d.id = blobs.id) ORDER BY id")]


def _drop_blob(conn: sqlite3.Connection, blob_id: str) -> None:
    conn.execute("DELETE FROM messages WHERE blob_id = ?", (blob_id,))
    conn.execute("DELETE FROM queue WHERE blob_id = ?", (blob_id,))
    conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    out = {}
    for table in ("domains", "users", "mailboxes", "messages", "blobs", "queue"):
        out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return out


def _blob_path(blobs: Path, blob_id: str) -> Path:
    return blobs / blob_id[:2] / blob_id


def create_backup(data_dir: Path, out: Path, *, config_file: Path | None = None,
                  progress: Progress | None = None) -> Manifest:
    """Write a backup of ``data_dir`` to ``out`` (created 0600; an existing file is refused).

    Raises:
        InvalidInput: ``out`` exists, or ``data_dir`` holds no store.
    """
    note = progress or no_progress
    db_path = data_dir / "rmail.db"
    if not db_path.is_file():
        raise InvalidInput(f"no rmail store in {data_dir}")
    if out.exists():
        raise InvalidInput(f"{out} exists already; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".rmail-backup-", dir=out.parent))
    partial = out.with_name(out.name + ".partial")
    try:
        snap = work / "rmail.db"
        note("copying the database")
        snapshot_database(db_path, snap)
        conn = sqlite3.connect(snap)
        try:
            blob_ids = _file_blobs(conn)
        finally:
            conn.close()
        manifest = Manifest(FORMAT, _version(), int(time.time()), {})
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            def add(path: Path, name: str) -> None:
                # One open for hash and copy: a file unlinked meanwhile is still read whole.
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = st.st_size, 0o600, int(st.st_mtime)
                    reader = _HashingReader(fh)
                    tar.addfile(info, reader)
                manifest.files[name] = {"sha256": reader.hash.hexdigest(), "size": st.st_size}

            # Message files first, so the database copy can forget any that were gone.
            gone = []
            for i, blob_id in enumerate(blob_ids, 1):
                try:
                    add(_blob_path(data_dir / "blobs", blob_id), f"blobs/{blob_id[:2]}/{blob_id}")
                except FileNotFoundError:
                    gone.append(blob_id)      # its message was deleted after the snapshot
                if i % 100 == 0 or i == len(blob_ids):
                    note("message files", i, len(blob_ids))
            conn = sqlite3.connect(snap)
            try:
                with conn:
                    for blob_id in gone:
                        _drop_blob(conn, blob_id)
                manifest.counts = _counts(conn)
            finally:
                conn.close()
            manifest.counts["blob_files"] = len(blob_ids) - len(gone)
            manifest.counts["deleted_during_backup"] = len(gone)
            add(snap, "rmail.db")
            keys = data_dir / "keys"
            if keys.is_dir():
                for path in sorted(keys.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        add(path, "keys/" + path.relative_to(keys).as_posix())
            if config_file is not None and config_file.is_file():
                manifest.config = f"config/{config_file.name}"
                add(config_file, manifest.config)
            body = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, manifest.created
            tar.addfile(info, io.BytesIO(body))
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(partial, out)
        return manifest
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InvalidInput(f"the backup holds an unsafe path: {name!r}")
    if path.parts[0] not in ("rmail.db", "blobs", "keys", "config", MANIFEST):
        raise InvalidInput(f"the backup holds an unexpected member: {name!r}")
    return path


def _is_empty(directory: Path) -> bool:
    return not directory.exists() or (directory.is_dir() and not any(directory.iterdir()))


def restore_backup(archive: Path, data_dir: Path, *, progress: Progress | None = None) -> Manifest:
    """Unpack ``archive`` into ``data_dir``, which must be missing or empty; every member is
    checked against the manifest. Directories are made 0700 and files 0600. The config file
    in the backup is written to ``data_dir/restored-config/`` (its ``data_dir`` setting may
    need changing for the new place). On any error, what was unpacked is removed again.

    Raises:
        InvalidInput: a non-empty target, a damaged or foreign archive, a checksum mismatch.
    """
    note = progress or no_progress
    if not _is_empty(data_dir):
        raise InvalidInput(f"{data_dir} is not empty; restore only into a new or empty data dir")
    if not archive.is_file():
        raise InvalidInput(f"no backup file {archive}")
    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    try:
        try:
            tar = tarfile.open(archive, mode="r:gz")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidInput(f"{archive} is not an rmail backup ({exc})") from None
        with tar:
            try:
                source = tar.extractfile(tar.getmember(MANIFEST))
                if source is None:        # a directory, link or device by that name
                    raise InvalidInput(f"{archive} is not an rmail backup (its manifest is not a file)")
                manifest = Manifest.from_json(source.read())
            except KeyError:
                raise InvalidInput(f"{archive} is not an rmail backup (no manifest)") from None
            except (tarfile.TarError, EOFError, OSError, zlib_error()) as exc:
                raise InvalidInput(f"{archive} is damaged ({exc})") from None
            if manifest.format != FORMAT:
                raise InvalidInput(f"backup format {manifest.format} is not supported (this rmail reads {FORMAT})")
            seen: set[str] = set()
            total = len(manifest.files)
            try:
                for member in tar:
                    if member.name == MANIFEST:
                        continue
                    rel = _safe_name(member.name)
                    if not member.isfile():
                        raise InvalidInput(f"the backup holds a non-file member: {member.name!r}")
                    expected = manifest.files.get(member.name)
                    if expected is None or member.name in seen:
                        raise InvalidInput(f"the backup holds a member its manifest does not list: {member.name!r}")
                    top = "restored-config" if rel.parts[0] == "config" else rel.parts[0]
                    target = data_dir.joinpath(top, *rel.parts[1:])
                    for parent in reversed(target.relative_to(data_dir).parents[:-1]):
                        d = data_dir / parent
                        d.mkdir(exist_ok=True, mode=0o700)
                        os.chmod(d, 0o700)
                    source = tar.extractfile(member)
                    assert source is not None
                    h = hashlib.sha256()
                    size = 0
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        while chunk := source.read(CHUNK):
                            h.update(chunk)
                            size += len(chunk)
                            fh.write(chunk)
                        fh.flush()
                        os.fsync(fh.fileno())
                    if h.hexdigest() != expected.get("sha256") or size != expected.get("size"):
                        raise InvalidInput(f"checksum mismatch for {member.name}: the backup is damaged")
                    seen.add(member.name)
                    if len(seen) % 200 == 0 or len(seen) == total:
                        note("restoring files", len(seen), total)
            except (tarfile.TarError, EOFError, zlib_error()) as exc:
                raise InvalidInput(f"{archive} is damaged ({exc})") from None
            missing = sorted(set(manifest.files) - seen)
            if missing:
                raise InvalidInput(f"the backup lacks {len(missing)} file(s) its manifest lists, e.g. {missing[0]}")
        for sub in ("keys", "blobs"):
            d = data_dir / sub
            d.mkdir(exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)
        check = sqlite3.connect(_readonly_uri(data_dir / "rmail.db"), uri=True)
        try:
            result = check.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            check.close()
        if result != "ok":
            raise InvalidInput(f"the restored database fails its check: {result}")
        return manifest
    except BaseException:
        _empty_out(data_dir, remove_self=created)
        raise


def zlib_error() -> type[BaseException]:
    import zlib
    return zlib.error


def _empty_out(directory: Path, *, remove_self: bool) -> None:
    """Undo a failed restore: the directory was empty (or missing) before it started."""
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if remove_self:
            directory.rmdir()


def describe(manifest: Manifest) -> str:
    c = manifest.counts
    return (f"{c.get('users', 0)} users, {c.get('mailboxes', 0)} mailboxes, {c.get('messages', 0)} messages,"
            f" {c.get('blob_files', 0)} message files, {len(manifest.files)} files in all")

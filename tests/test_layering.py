"""Dependencies point inward (DESIGN.md): core imports no protocol package, nothing under
rmail.server imports Textual, and the mail client shares no code with the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rmail"


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


def modules(sub: str) -> list[Path]:
    return sorted((ROOT / sub).rglob("*.py"))


@pytest.mark.parametrize("path", modules("server/core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_adapter(path: Path) -> None:
    bad = {n for n in imports_of(path)
           if n.startswith(("rmail.server.smtp", "rmail.server.imap", "rmail.server.http", "rmail.tui",
                            "rmail.client", "rmail.cli", "aiosmtpd", "aiohttp", "textual"))}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", modules("server"), ids=lambda p: str(p.relative_to(ROOT)))
def test_server_never_imports_textual(path: Path) -> None:
    bad = {n for n in imports_of(path) if n.split(".")[0] in ("textual", "rich") or n.startswith("rmail.tui")}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", modules("client"), ids=lambda p: str(p.relative_to(ROOT)))
def test_client_is_independent_of_server(path: Path) -> None:
    bad = {n for n in imports_of(path) if n.startswith("rmail.server")}
    assert not bad, f"{path} imports {bad}"


BACKENDS = ("server/core/sqlite", "server/core/postgres")
DRIVERS = ("sqlite3", "asyncpg", "psycopg")
#: Modules outside the backends allowed to import one, and why.
BACKEND_USERS = {
    "cli/backup.py": "backs up the embedded store's own files (a PostgreSQL store is backed up with pg_dump)",
}


def _in(path: Path, subs: tuple[str, ...]) -> bool:
    return any(path.is_relative_to(ROOT / sub) for sub in subs)


OUTSIDE_BACKENDS = [p for p in modules("") if not _in(p, BACKENDS)]


@pytest.mark.parametrize("path", OUTSIDE_BACKENDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_drivers_stay_in_their_backend(path: Path) -> None:
    """DESIGN, the storage contract: nothing outside a backend package imports its driver."""
    bad = {n for n in imports_of(path) if n.split(".")[0] in DRIVERS}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", OUTSIDE_BACKENDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_everything_else_sees_only_the_contract(path: Path) -> None:
    """Adapters, faces and core services use core.storage's Protocols, never a backend's
    modules (``storage.open_backend`` picks one by name)."""
    if str(path.relative_to(ROOT)) in BACKEND_USERS:
        return
    bad = {n for n in imports_of(path) if n.startswith(("rmail.server.core.sqlite", "rmail.server.core.postgres"))}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", modules("server/core/sqlite"), ids=lambda p: str(p.relative_to(ROOT)))
def test_backends_do_not_lean_on_each_other(path: Path) -> None:
    bad = {n for n in imports_of(path) if n.startswith("rmail.server.core.postgres")}
    assert not bad, f"{path} imports {bad}"

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


FACES_AND_ADAPTERS = [p for sub in ("server/smtp", "server/imap", "server/http", "tui", "cli", "e2e", "client")
                      for p in modules(sub)]


@pytest.mark.parametrize("path", FACES_AND_ADAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_core_speaks_sql(path: Path) -> None:
    """DESIGN: the store is the seam (a PostgreSQL store can come later); no adapter or face
    may assume SQLite: no sqlite3 import and no raw access to the store's database."""
    text = path.read_text(encoding="utf-8")
    assert "sqlite3" not in imports_of(path), f"{path} imports sqlite3"
    assert ".db.read(" not in text and ".db.write(" not in text, f"{path} runs SQL through store.db"

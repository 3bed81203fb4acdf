"""The IMAP package keeps its shape (rmail/server/imap/__init__.py): one table says which
commands run where and each has one handler; only the encoder writes protocol syntax; only the
connection and the parser's tests touch the parser."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rmail.server.imap.handlers import HANDLERS
from rmail.server.imap.protocol import COMMANDS_BY_STATE

PACKAGE = Path(__file__).resolve().parents[2] / "rmail" / "server" / "imap"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: The encoder writes responses; the framer and the parser read commands (their byte
#: constants are the client's syntax, not ours).
SYNTAX_OWNERS = {"encode.py", "wire.py", "parser.py"}


def test_every_allowed_command_has_one_handler() -> None:
    allowed = set().union(*COMMANDS_BY_STATE.values())
    assert set(HANDLERS) == allowed


def _bytes_constants(path: Path) -> list[tuple[int, bytes]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, bytes)]


@pytest.mark.parametrize("path", [p for p in MODULES if p.name not in SYNTAX_OWNERS],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_encoder_writes_protocol_syntax(path: Path) -> None:
    """No line endings, response starts, literal markers or quoting outside encode.py."""
    bad = [(line, value) for line, value in _bytes_constants(path)
           if b"\r" in value or b"\n" in value or value.startswith((b"* ", b"+ "))
           or b"{" in value or b'"' in value or b"\\" in value]
    assert not bad, f"{path.name} writes protocol syntax by hand: {bad}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.rsplit(".", 1)[-1])
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", [p for p in MODULES if p.name not in ("connection.py", "parser.py")],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_handlers_import_commands_not_the_parser(path: Path) -> None:
    assert "parser" not in _imports(path)

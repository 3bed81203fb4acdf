"""Bring a DataTable in line with fresh rows, touching only what changed.

A full ``clear()`` + re-add on every refresh would redraw the whole table and lose the cursor;
panes refresh a few times a second under load, so they diff instead.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

Row = Sequence[Text]


def selected_key(table: DataTable) -> str | None:
    """The key of the row under the cursor, or None for an empty table."""
    if table.row_count == 0:
        return None
    try:
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    except CellDoesNotExist:
        return None
    return row_key.value


def _same(a: object, b: object) -> bool:
    # Text.__eq__ ignores the style, and a style change (e.g. admin yes/no colour) must show.
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return a == b


def _wider(table: DataTable, column: ColumnKey, value: object) -> bool:
    """Whether ``value`` needs more room than its column has. Asked per changed cell, so a
    cell that still fits costs no re-measuring (Textual's ``update_width`` re-measures the
    whole column whenever a value gets shorter)."""
    width = value.cell_len if isinstance(value, Text) else len(str(value))
    return width > table.columns[column].content_width


def sync_table(table: DataTable, rows: Mapping[str, Row], *, ordered: bool = False) -> None:
    """Make ``table`` show ``rows`` (key → cells, in display order).

    Rows that went away are removed, new keys appended, changed cells updated in place. With
    ``ordered`` the display order must equal the order of ``rows`` (alias rules are evaluated
    in that order), so when appending cannot produce it the table is rebuilt.
    The cursor stays on the same key while that row exists. A column widens when a value
    grows past it (a byte count, a longer state), and never narrows while the table lives.
    """
    keep = selected_key(table)
    current = [k.value for k in table.rows]
    wanted = list(rows)
    kept = [k for k in current if k in rows]
    if ordered and kept + [k for k in wanted if k not in set(current)] != wanted:
        table.clear()
        current, kept = [], []
    for key in current:
        if key not in rows:
            table.remove_row(key)
    columns = list(table.columns)
    present = set(kept)
    for key, cells in rows.items():
        if key not in present:
            table.add_row(*cells, key=key)
            continue
        old = table.get_row(key)
        if all(a is b for a, b in zip(old, cells)):
            continue                     # the pane reused the row's cells: nothing changed
        for column, before, after in zip(columns, old, cells):
            if before is not after and not _same(before, after):
                table.update_cell(key, column, after, update_width=_wider(table, column, after))
    if keep is not None and keep in rows:
        table.move_cursor(row=table.get_row_index(RowKey(keep)), animate=False)

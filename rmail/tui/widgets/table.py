"""The panes' DataTable: keeps rendered cells across updates, and j/k move the cursor.

Textual's DataTable keys its cell cache on a table-wide update counter, so one ``update_cell``
(a connection's byte count) or a focus change (every tab switch restyles the table) throws
away every rendered cell and the next frame renders each visible cell through Rich again.
Here a rendered cell is cached by everything that determines its output: the cell object
itself (``sync_table`` replaces a changed cell with a new object), its position (mouse
metadata carries the row and column), width, row height and the resolved styles. A refresh
then renders only cells that really changed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.widgets import DataTable

#: Rendered cells kept: several screens' worth for each focus state, a few hundred KiB at most.
CELL_CACHE = 6000


class ConsoleTable(DataTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        # Before DataTable's __init__: its reactive watchers already clear caches.
        self._cells: LRUCache[tuple, tuple[object, list[list[Segment]]]] = LRUCache(CELL_CACHE)
        #: Cells rendered through Rich (tests check that an update re-renders only what changed).
        self.cells_rendered = 0
        super().__init__(**kwargs)

    def _cell_value(self, row_index: int, column_index: int) -> tuple[object, int]:
        """The object a cell is rendered from, and the height it is rendered at."""
        if row_index == -1:
            column_key = self._column_locations.get_key(column_index)
            return (self.columns[column_key].label if column_key in self.columns else None), self.header_height
        row_key = self._row_locations.get_key(row_index)
        row = self.rows.get(row_key) if row_key is not None else None
        if row is None:
            return None, 0
        if column_index == -1:
            return row.label, row.height
        column_key = self._column_locations.get_key(column_index)
        return self._data.get(row_key, {}).get(column_key), row.height

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        value, height = self._cell_value(row_index, column_index)
        is_fixed = (row_index != -1 and column_index != -1
                    and (row_index < self.fixed_rows or column_index < self.fixed_columns))
        # The resolved styles, not the focus state: focused and unfocused tables are cached apart
        # only where they look different (the cursor row).
        styles = self._get_styles_to_render_cell(
            row_index == -1, column_index == -1, is_fixed, hover, cursor, self.show_cursor,
            self._show_hover_cursor, self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css")
        key = (row_index, column_index, self._row_locations.get_key(row_index) if row_index != -1 else None,
               id(value), width, height, self.cell_padding, base_style, styles)
        cached = self._cells.get(key)
        # The cached entry holds the value, so an id cannot be reused while the entry lives.
        if cached is not None and cached[0] is value:
            return cached[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self.cells_rendered += 1
        self._cells[key] = (value, lines)
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._cells.clear()

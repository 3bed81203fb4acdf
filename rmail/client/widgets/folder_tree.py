"""The folder tree: hierarchy by delimiter, unread counts, INBOX and special-use first."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from rmail.client.model import Folder
from rmail.client.render import folder_label


class FolderTree(Tree[str]):
    """Node data is the full mailbox name (None for a non-selectable parent)."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Folders", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.folders: list[Folder] = []

    def show_folders(self, folders: Sequence[Folder], current: str | None) -> None:
        """Rebuild the tree (folders come already sorted) and keep ``current`` highlighted."""
        self.folders = list(folders)
        self.clear()
        nodes: dict[str, TreeNode[str]] = {}
        target: TreeNode[str] | None = None
        for f in folders:
            parent = self.root
            if f.delimiter and f.delimiter in f.name:
                parent_name = f.name.rsplit(f.delimiter, 1)[0]
                parent = nodes.get(parent_name, self.root)
            node = parent.add(folder_label(f), data=f.name if f.selectable else None, expand=True)
            node.allow_expand = False
            nodes[f.name] = node
            if f.name == current:
                target = node
        for node in nodes.values():
            node.allow_expand = bool(node.children)
        if target is not None:
            # Node line numbers exist only after the tree lines are rebuilt on refresh.
            self.call_after_refresh(self.move_cursor, target)

    def folder(self, name: str) -> Folder | None:
        return next((f for f in self.folders if f.name == name), None)

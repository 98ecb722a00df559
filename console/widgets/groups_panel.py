"""The groups panel: everyone, and connections by node, user, path and topic, with counts.

Each node of a cluster is listed, with no connections too, and marked when it is
not a live serving node: missing (it did not answer the last request), suspect
or gone (its heartbeats), draining or stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rich.text import Text
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ..formatting import human_count, natural_key
from ..output import counted, printable
from ..view_state import GroupKey, node_marker

__all__ = ["GroupsPanel"]

_SECTIONS = (("node", "nodes", "Nodes"), ("user", "users", "Users"), ("path", "paths", "Paths"),
             ("topic", "topics", "Topics"))
# Each label says what its number counts: the sections count groups ("16
# users"), everyone and each group count connections ("All 17 connections",
# "ann 2" under it).


class GroupsPanel(Tree[GroupKey]):
    """A tree of groups, updated in place by key as counts change."""

    DEFAULT_CSS = """
    GroupsPanel {
        width: 24;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0 0;
    }
    GroupsPanel:focus {
        border: round $accent;
    }
    GroupsPanel.stale {
        opacity: 60%;
    }
    """

    @dataclass
    class GroupChosen(Message):
        """The operator chose a group; the table should show only it."""

        kind: str
        """everyone, node, user, path or topic."""
        value: str | None
        """The node, user, path or topic; None for everyone."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("groups", data=("everyone", None), id=id)
        self.show_root = False
        self.guide_depth = 2
        self._everyone: TreeNode[GroupKey] | None = None
        self._sections: dict[str, TreeNode[GroupKey]] = {}
        self._group_nodes: dict[GroupKey, TreeNode[GroupKey]] = {}
        self._active: GroupKey = ("everyone", None)
        self._counts: dict[GroupKey, int] = {}
        self._total: int | None = None
        self._groups: dict[str, Any] = {}
        self._node_entries: dict[str, Mapping[str, Any]] = {}
        self._missing: dict[str, str] = {}
        self.truncated = False
        """True when the server sent only the largest groups."""
        self._labels: dict[GroupKey, tuple[tuple[int | None, bool], Text]] = {}
        # Counts and marks that arrived while the panel was hidden: applied when
        # it shows again (see _apply).
        self._behind = False

    def on_mount(self) -> None:
        self.border_title = "Groups"
        self._everyone = self.root.add_leaf("Everyone", data=("everyone", None))
        for kind, _, title in _SECTIONS:
            self._sections[kind] = self.root.add(title, data=(kind, None), expand=True)
        self.root.expand()

    @property
    def active(self) -> GroupKey:
        """The group the table shows."""
        return self._active

    def set_active(self, key: GroupKey) -> None:
        """Mark which group the table shows (after a filter typed with ``/``, too)."""
        previous, self._active = self._active, key
        if not self.display:
            self._behind = True
            return
        for key in (previous, self._active):
            if key == ("everyone", None) and self._everyone is not None:
                _relabel(self._everyone, self._label(key, self._total))
            elif key in self._group_nodes:
                _relabel(self._group_nodes[key], self._label(key, self._counts.get(key)))

    def update_nodes(self, nodes: Any, missing: Mapping[str, str]) -> None:
        """Apply what is known of the nodes: each is listed (with no connections
        too) and marked by its state, health, and whether it answered."""
        self._node_entries = {str(n["node"]): n for n in nodes or ()
                       if isinstance(n, Mapping) and n.get("node")}
        self._missing = dict(missing)
        self._apply(None, self.truncated)

    def update_groups(self, groups: dict[str, dict[str, int]], total: int | None,
                      truncated: bool = False) -> None:
        """Apply new counts: update labels, add new groups, remove empty ones."""
        self._groups = groups
        self._apply(total, truncated)

    def on_show(self) -> None:
        self.catch_up()

    def catch_up(self) -> None:
        """Show what arrived while the panel was hidden."""
        if self._behind and self.display:
            self._apply(None, self.truncated)

    def _apply(self, total: int | None, truncated: bool) -> None:
        if total is not None:
            self._total = total
        groups = self._groups
        counts: dict[GroupKey, int] = {}
        for kind, plural, _ in _SECTIONS:
            for value, count in (groups.get(plural) or groups.get(kind) or {}).items():
                counts[(kind, value)] = int(count)
        # A node with no connections, or that did not answer, is still a node.
        for name in (*self._node_entries, *self._missing):
            counts.setdefault(("node", name), 0)
        self._counts = counts
        if self._everyone is None:
            return
        if not self.display:
            # Hidden (below GROUPS_MIN_WIDTH columns, or G): a tree that gains or
            # loses a node lays the whole screen out, shown or not, and under
            # churn the groups change with every page. Kept, applied once shown.
            self._behind = True
            self.truncated = truncated
            return
        self._behind = False
        if self._total is not None:
            _relabel(self._everyone, self._label(("everyone", None), self._total))
        for key in [k for k in self._group_nodes if k not in counts]:
            self._group_nodes.pop(key).remove()
            self._labels.pop(key, None)
        longest = max(sum(1 for (k, _) in counts if k == kind) for kind, _, _ in _SECTIONS)
        for kind, _, title in _SECTIONS:
            section = self._sections[kind]
            values = sorted((v for (k, v) in counts if k == kind), key=natural_key)
            n = len(values)
            # Truncated: the server sent only the largest groups of a kind that
            # has more than its limit, so that kind is the one with the most.
            more = "+" if truncated and n == longest else ""
            _relabel(section, Text(counted(f"{n}{more}", kind)))
            for index, value in enumerate(values):
                key = (kind, value)
                label = self._label(key, counts[key])
                node = self._group_nodes.get(key)
                if node is None:
                    # Insert in name order (u2 before u10), so groups do not jump around.
                    following = next((self._group_nodes[(kind, v)] for v in values[index + 1:]
                                      if (kind, v) in self._group_nodes), None)
                    self._group_nodes[key] = section.add_leaf(label, data=key, before=following)
                else:
                    _relabel(node, label)
        self.truncated = truncated
        subtitle = "largest groups only" if truncated else ""
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle

    def _label(self, key: GroupKey, count: int | None) -> Text:
        kind, value = key
        if kind in ("user", "path", "topic"):
            # Asked for every group with every page: the label of a user, path
            # or topic depends only on its count and whether it is the active one.
            drawn = (count, key == self._active)
            kept = self._labels.get(key)
            if kept is None or kept[0] != drawn:
                kept = self._labels[key] = (drawn, self._draw_label(key, count))
            return kept[1]
        return self._draw_label(key, count)

    def _draw_label(self, key: GroupKey, count: int | None) -> Text:
        kind, value = key
        name = "All" if kind == "everyone" else printable(value)
        active = key == self._active
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("▶ " if active else "  ", style="bold yellow" if active else "")
        text.append(name, style="bold" if active else "")
        node = str(value) if kind == "node" else None
        entry = self._node_entries.get(node) if node is not None else None
        gone = node in self._missing or (entry is not None and entry.get("health") == "gone")
        if gone and not (self._groups.get("nodes") or {}).get(node):
            count = None  # it did not answer: its count is not known, not 0
        if count is not None:
            text.append(f" {counted(human_count(count), 'connection')}" if kind == "everyone"
                        else f" {count}", style="dim")
        # Before the first answer about the nodes, a node is only a count.
        if node is not None and (node in self._node_entries or node in self._missing):
            marker, style = node_marker(self._node_entries.get(node), self._missing)
            if marker:
                text.append(f" {marker}", style=style)
        return text

    def show_stale(self, since: float | None) -> None:
        """Say that the counts are the last ones received (``since``: when the link
        went down), or, with None, that they are current."""
        self.set_class(since is not None, "stale")
        self.border_title = "Groups" if since is None else "Groups (stale)"

    def on_tree_node_selected(self, event: Tree.NodeSelected[GroupKey]) -> None:
        event.stop()
        data = event.node.data
        if data is None:
            return
        kind, value = data
        if kind != "everyone" and value is None:
            return  # a section heading: it only folds
        self.post_message(self.GroupChosen(kind, value))


def _relabel(node: TreeNode[GroupKey], label: Text) -> None:
    # Setting a label repaints the whole tree, and counts arrive with every
    # page: only when the label has changed.
    if node.label != label:
        node.set_label(label)

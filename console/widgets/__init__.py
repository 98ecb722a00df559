"""Widgets of the console: status bar, groups panel, connection table, event log."""

from .connection_table import COLUMNS, ConnectionTable
from .event_log import EventLog
from .groups_panel import GroupsPanel
from .status_bar import StatusBar

__all__ = ["COLUMNS", "ConnectionTable", "EventLog", "GroupsPanel", "StatusBar"]

"""Widgets of the console: status bar, groups panel, connection table, event log,
the footer of keys, the too-small notice, the radio set of a dialog."""

from .choice_set import ChoiceSet
from .connection_table import ConnectionTable
from .event_log import EventLog
from .groups_panel import GroupsPanel
from .keys_footer import KeysFooter
from .status_bar import StatusBar
from .too_small_notice import MIN_SIZE, TooSmallNotice, too_small

__all__ = ["ChoiceSet", "ConnectionTable", "EventLog", "GroupsPanel", "KeysFooter", "StatusBar",
           "TooSmallNotice", "MIN_SIZE", "too_small"]

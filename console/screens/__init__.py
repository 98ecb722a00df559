"""Screens of the console; each has its styles in a ``.tcss`` file beside it."""

from .compose import ComposeScreen
from .confirm import DisconnectScreen
from .detail import DetailScreen
from .ended import ServerStoppedScreen
from .help import HelpScreen
from .main import MainScreen
from .shutdown import ShutdownScreen
from .tap import TapScreen

__all__ = [
    "ComposeScreen",
    "DetailScreen",
    "DisconnectScreen",
    "HelpScreen",
    "MainScreen",
    "ServerStoppedScreen",
    "ShutdownScreen",
    "TapScreen",
]

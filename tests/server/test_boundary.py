"""The layers' import boundaries, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout
    return set(out.split())


def test_server_imports_without_textual_or_the_console():
    """`import wsconsole.server` never loads textual or wsconsole.console."""
    modules = loaded_modules("import wsconsole.server, wsconsole.server.runner")
    assert "wsconsole.server" in modules
    assert not {m for m in modules if m == "textual" or m.startswith("textual.")}
    assert not {m for m in modules if m.startswith("wsconsole.console")}


PURE_CORE = ["registry", "indexes", "wire", "errors", "protocol", "redaction", "addresses", "tap",
             "config", "limits", "patterns"]


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_imports_no_asyncio_or_websockets(module):
    """The registry, wire format, errors, enums and shared rules are pure:
    importing one loads no asyncio, no websockets and no other part of the server."""
    modules = loaded_modules(f"import wsconsole.server.{module}")
    assert f"wsconsole.server.{module}" in modules
    assert "asyncio" not in modules and "websockets" not in modules
    assert not modules & {"wsconsole.server.hub", "wsconsole.server.serving",
                          "wsconsole.server.control"}


CLIENT_SIDE = ["wsconsole.console.client", "wsconsole.console.commands",
               "wsconsole.console.app"]


@pytest.mark.parametrize("module", CLIENT_SIDE)
def test_console_imports_only_the_wire_format_from_the_server(module):
    """The console's client, commands and app load only the server's pure core
    (wire format, errors, enums and rules, registry values), never the hub."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    modules = loaded_modules(f"import {module}")
    server_side = {m for m in modules if m.startswith("wsconsole.server.")}
    assert server_side <= {f"wsconsole.server.{name}" for name in PURE_CORE}

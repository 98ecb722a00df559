"""What the console may import from the server, and that its screenshots are current."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

import wsconsole.console
from wsconsole.console.screenshots import SHOTS, write_screenshots

CONSOLE = Path(wsconsole.console.__file__).parent
ALLOWED = {"wsconsole.server.wire", "wsconsole.server.errors", "wsconsole.server.registry",
           "wsconsole.server.protocol", "wsconsole.server.redaction",
           "wsconsole.server.addresses", "wsconsole.server.tap", "wsconsole.server.patterns"}
# Modules that are allowed to load the server, lazily, inside a function.
SERVER_STARTERS = {"tui_command.py", "serve_command.py", "cli.py"}
TUI_MODULES = ["app.py", "formatting.py", "link.py", "messages.py", "screenshots.py",
               "simulator.py", "tui_command.py", "view_state.py", *(f"screens/{p.name}" for p in
               (CONSOLE / "screens").glob("*.py")),
               *(f"widgets/{p.name}" for p in (CONSOLE / "widgets").glob("*.py"))]


@pytest.mark.parametrize("module", TUI_MODULES)
def test_tui_imports_only_the_wire_format_of_the_server(module: str) -> None:
    """At module level, the TUI imports from the server only its pure core: wire,
    errors, registry, and the shared enums and rules."""
    tree = ast.parse((CONSOLE / module).read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("wsconsole.server"):
            assert node.module in ALLOWED, f"{module} imports {node.module}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wsconsole.server"):
                    assert alias.name in ALLOWED, f"{module} imports {alias.name}"


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A non-UTC zone for the test, and the process's own zone back afterwards."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield "America/New_York"
    monkeypatch.undo()
    time.tzset()


# Four screens drawn at 160x46: seconds on an idle machine, a minute when the
# cores are busy with other work. The generator waits for what each picture
# shows, however long that takes; this is only the guard against a hang.
@pytest.mark.timeout(240)
@pytest.mark.usefixtures("textual_idle_waits")
def test_screenshots_match_the_committed_ones(tmp_path: Path, local_zone: str) -> None:
    """`wsconsole screenshots` reproduces the committed SVGs exactly (rerun it if not),
    in UTC whatever the local zone, and gives the caller's zone back."""
    repository = CONSOLE.parent / "screenshots"
    if not (repository / "main.svg").exists():
        pytest.skip("not running from a source checkout")
    written = write_screenshots(tmp_path)
    assert os.environ["TZ"] == local_zone
    assert time.localtime(0).tm_hour == 19  # 1970-01-01 00:00 UTC in New York
    assert sorted(p.stem for p in written) == sorted(SHOTS)
    for path in written:
        committed = (repository / path.name).read_text(encoding="utf-8")
        assert path.read_text(encoding="utf-8") == committed, (
            f"{path.name} is out of date: run `wsconsole screenshots`")

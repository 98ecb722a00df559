"""Settings for the whole test session (helpers live in tests/helpers.py).

The default run spreads the tests over the machine's cores with pytest-xdist
(the test extra), one worker per core and one more (tests wait on processes
and sockets a third of the time); a run naming files or tests stays in
one process, where starting workers would cost more than it saves. ``-n N``
on the command line, or ``-n 0`` (or ``-p no:xdist``), decide instead. Every
test starts its servers on port 0 and writes only to its own ``tmp_path``, so
no two tests share anything but the CPU.

At the end, one line says how long the run took against the suite's budget
(under a minute on a two-core machine, as the README says), and
``--durations`` in pyproject.toml lists the tests that took a second or more:
the time stays visible without a test that fails on a slow machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Textual redraws a changing screen up to 60 times a second, for the eye. The
# console's tests wait for what is drawn, never for frames: 15 a second are
# plenty, and leave the CPU to the servers under test (a quarter less for the
# app tests). Set before anything imports Textual, which reads it once.
os.environ.setdefault("TEXTUAL_FPS", "15")

# The event loop of the tests: asyncio's own unless WSCONSOLE_TEST_LOOP=uvloop
# (`WSCONSOLE_TEST_LOOP=uvloop pytest tests/server`, with uvloop installed:
# pip install -e ".[test,fast]"). The default suite never needs uvloop. The
# `wsconsole serve` processes the tests start follow it through
# WSCONSOLE_LOOP, the default of --loop, instead of running on uvloop just
# because it is installed.
TEST_LOOP = os.environ.get("WSCONSOLE_TEST_LOOP") or "asyncio"
os.environ["WSCONSOLE_LOOP"] = TEST_LOOP

if TEST_LOOP == "uvloop":
    import uvloop

    def pytest_asyncio_loop_factories(config, item):
        """Every async test and fixture runs on a uvloop loop."""
        return {"uvloop": uvloop.new_event_loop}


async def _to_the_app(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
    """Between two keys: let the key just sent reach the app's queue (it is
    posted with ``run_coroutine_threadsafe``: a few turns of the loop)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def _settled(app: Any) -> None:
    """Wait until ``app`` has handled what it was sent: its messages and those of
    a screen that opened meanwhile (composed and mounted), then a refresh of
    the screen (laid out and drawn). At most a second for the refresh, as
    Textual's own wait: the app may be closing, and never refresh again."""
    from textual.pilot import Pilot

    await Pilot(app)._wait_for_screen()
    screen = app.screen
    if screen.is_running:
        try:
            async with asyncio.timeout(1.0):
                await screen.wait_for_refresh()
        except TimeoutError:
            pass


async def _app_settled(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
    """``Pilot.pause()``'s wait (after its own wait for the screen's messages)."""
    from textual._context import active_app

    await _settled(active_app.get())


async def _press_and_settle(pilot: Any, *keys: str) -> None:
    """``Pilot.press``, then wait until the app has handled the keys."""
    await _pilot_press(pilot, *keys)
    if keys:
        await _settled(pilot.app)


_pilot_press: Any = None


@pytest.fixture(autouse=True)
def _pilot_waits_for_the_app_not_for_idle() -> None:
    """``pilot.press``, ``pause`` and ``click`` wait for the app, not for the CPU to go idle.

    Textual's pilot waits until the process has used almost no CPU for 20 ms
    (``textual._wait.wait_for_idle``), up to a second: twice after each key,
    once before each mouse event. The console's tests run the server, its
    clients and the app in one process, which is rarely that idle: each key
    cost 0.05-0.4 s, half the app tests' time. Instead the keys go to the app
    one after the other (through the driver, in order), and ``press`` and
    ``pause`` return once the app has handled what it was sent and refreshed
    the screen since (``_settled``): deterministic, and one refresh per call.
    """
    global _pilot_press
    app = sys.modules.get("textual.app")
    if app is None or app.wait_for_idle is _to_the_app:
        return  # no console in this process (yet), or done
    import textual.pilot
    from textual.pilot import Pilot

    # Private names of Textual's: fail loudly if they move, not slowly.
    for module in (app, textual.pilot):
        assert module.wait_for_idle.__module__ == "textual._wait", module
    assert Pilot._wait_for_screen
    app.wait_for_idle = _to_the_app
    textual.pilot.wait_for_idle = _app_settled
    _pilot_press, Pilot.press = Pilot.press, _press_and_settle


@pytest.fixture
def textual_idle_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys wait for the CPU to go idle, as outside the tests: for ``wsconsole
    screenshots``, whose committed pictures were made so."""
    import textual._wait
    import textual.app
    import textual.pilot
    from textual.pilot import Pilot

    for module in (textual.app, textual.pilot):
        monkeypatch.setattr(module, "wait_for_idle", textual._wait.wait_for_idle)
    if _pilot_press is not None:
        monkeypatch.setattr(Pilot, "press", _pilot_press)


SUITE_BUDGET = 60.0
"""Seconds the default suite may take on this project's two-core machine."""

_started = time.monotonic()


def _names_files_or_tests(config: pytest.Config) -> bool:
    """True when the command line names test files or node ids, not folders."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return False  # testpaths: the whole suite
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0])
        if "::" in arg or path.is_file():
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # Called before pytest-xdist's own pytest_cmdline_main (a conftest is
    # registered after the installed plugins, and pluggy calls the later
    # first), which turns numprocesses into workers.
    if hasattr(config, "workerinput") or "PYTEST_XDIST_WORKER" in os.environ:
        return  # an xdist worker: it must never start workers of its own
    if getattr(config.option, "numprocesses", 0) is not None:
        return  # no xdist, or -n given on the command line
    if config.getoption("usepdb") or config.getoption("collectonly"):
        return
    if _names_files_or_tests(config):
        return
    # One worker more than cores: about a third of a worker's time is spent
    # waiting (node processes starting, a browser, redis-server, sockets), and
    # a third worker fills it (two cores: 58-62 s with two workers, 48-52 with
    # three, measured on an idle machine from a fresh clone).
    config.option.numprocesses = (os.cpu_count() or 1) + 1
    if config.option.dist == "no":
        # Test times range from milliseconds to seconds: idle workers take
        # tests from busy ones, so that no worker is left with the slow tail.
        config.option.dist = "worksteal"


# The few tests that take seconds each (a browser, every screenshot, a fleet
# whose nodes are stopped and killed) run first: the workers' queues are split
# in two and an idle worker takes from the end of a busy one's, so a long test
# at the end of the collection (tests/web sorts last) left one worker running
# it alone for its whole length while the other had nothing left to do.
SLOW_FIRST = (
    "tests/web/test_browser.py",
    "tests/console/test_boundaries.py",
    "tests/cluster/test_failures.py",
    "tests/cluster/test_demo_nodes.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    rootdir = Path(str(config.rootpath))

    def slow_rank(item) -> int:
        try:
            where = Path(str(item.path)).relative_to(rootdir).as_posix()
        except ValueError:
            return len(SLOW_FIRST)
        return SLOW_FIRST.index(where) if where in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=slow_rank)  # stable: the order within each file stays


def _whole_suite(config: pytest.Config) -> bool:
    """True for the default run: no files, folders or ``-k``/``-m`` narrowing it."""
    return (config.args_source is pytest.Config.ArgsSource.TESTPATHS
            and not config.getoption("keyword") and not config.getoption("markexpr")
            and not config.getoption("collectonly"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _whole_suite(config):
        return  # a worker (the controller reports), or not the whole suite
    elapsed = time.monotonic() - _started
    workers = getattr(config.option, "numprocesses", None) or 0
    ran = sum(len(terminalreporter.stats.get(key, []))
              for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"))
    where = f"{workers} workers" if workers else "one process"
    terminalreporter.write_line(
        f"wsconsole: {ran} tests in {elapsed:.1f} s on {where}, {os.cpu_count()} CPUs "
        f"(the default suite's budget: {SUITE_BUDGET:.0f} s on two cores)")

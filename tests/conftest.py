"""Settings for the whole test session (helpers live in tests/helpers.py).

The default run spreads the tests over the machine's cores with pytest-xdist
(the test extra), one worker per core; a run naming files or tests stays in
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

import os
import time
from pathlib import Path

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
    config.option.numprocesses = "auto"
    if config.option.dist == "no":
        # Test times range from milliseconds to seconds: idle workers take
        # tests from busy ones, so that no worker is left with the slow tail.
        config.option.dist = "worksteal"


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

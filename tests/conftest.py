"""Settings for the whole test session (helpers live in tests/helpers.py)."""

import os

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

"""The children that `serve --workers` and `demo --nodes` start get a process
group of their own on either event loop (uvloop refuses `process_group`)."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from wsconsole.console.workers import spawn_in_own_group

try:
    import uvloop
except ImportError:
    uvloop = None

LOOPS = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(uvloop.new_event_loop if uvloop else None, id="uvloop",
                 marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")),
]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_a_child_gets_a_process_group_of_its_own_on_either_loop(loop_factory):
    async def main() -> tuple[list[bytes], int | None]:
        child = await spawn_in_own_group(
            sys.executable, "-c", "import os; print(os.getpgid(0), os.getpid())",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await child.communicate()
        return out.split(), child.returncode

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        (group, pid), returncode = runner.run(main())
    assert returncode == 0
    # Its own group: a ctrl+c in the terminal (sent to the terminal's
    # foreground group, ours) does not reach it.
    assert group == pid
    assert int(group) != os.getpgid(0)

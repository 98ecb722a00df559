"""``list``'s groups_version and groups_since: a client that holds the groups is sent the page alone."""

from __future__ import annotations

from tests.helpers import wait_for

from .control_helpers import control, public, running


async def test_unchanged_groups_are_left_out_and_a_change_brings_them_back():
    """With the groups_version it last saw, a client gets no groups until a connection
    comes, goes or joins a topic; then the new counts with a new version."""
    async with running() as server, control(server) as ctl, public(server, "/?user=ann") as ann:
        first = await ctl.ok("list")
        version = first["groups_version"]
        assert first["groups"]["users"] == {"ann": 1}

        same = await ctl.ok("list", groups_since=version)
        assert "groups" not in same and "groups_truncated" not in same
        assert same["groups_version"] == version
        assert [c["user"] for c in same["connections"]] == ["ann"]  # the page is all there

        async with public(server, "/?user=bob"):
            await wait_for(lambda: len(server.hub.registry) == 2)
            changed = await ctl.ok("list", groups_since=version)
            assert changed["groups"]["users"] == {"ann": 1, "bob": 1}
            assert changed["groups_version"] != version

        await ann.send("join:lobby")
        assert await ann.recv() == "joined"
        joined = await ctl.ok("list", groups_since=changed["groups_version"])
        assert joined["groups"]["topics"] == {"lobby": 1}


async def test_groups_since_is_optional_and_checked_like_any_argument():
    """A client that never sends groups_since gets the groups every time (older
    consoles); a groups_since that is not an integer is a bad request."""
    async with running() as server, control(server) as ctl:
        assert "groups" in await ctl.ok("list")
        assert "groups" in await ctl.ok("list")
        assert await ctl.error("list", groups_since="7") == "bad_request"
        assert "groups" not in await ctl.ok("list", groups=False, groups_since=0)

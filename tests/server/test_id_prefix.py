"""A unique id prefix stands for its id; an ambiguous one is an error listing
the candidates (pure: the registry and the error's wire form)."""

from __future__ import annotations

import pytest

from wsconsole.server import wire
from wsconsole.server.errors import AmbiguousId, WsconsoleError
from wsconsole.server.registry import (
    MAX_CANDIDATES,
    ConnectionRecord,
    ConnectionRegistry,
    Selector,
)


@pytest.fixture
def registry() -> ConnectionRegistry:
    reg = ConnectionRegistry()
    for id, user in (("fd2d000001", "ann"), ("fd2d000002", "bob"), ("a1b2c3d4e5", "cid")):
        reg.add(ConnectionRecord(id, node="n1", user=user, path="/chat"))
    return reg


def test_a_unique_prefix_resolves_to_its_connection(registry):
    assert registry.resolve("a1").user == "cid"
    assert registry.resolve("a1b2c3d4e5").user == "cid"
    assert registry.resolve("fd2d000002").user == "bob"
    assert registry.resolve("ffff") is None
    assert registry.resolve("") is None


def test_an_ambiguous_prefix_lists_the_candidates(registry):
    with pytest.raises(AmbiguousId) as info:
        registry.resolve("fd2d")
    assert info.value.candidates == ("fd2d000001", "fd2d000002")
    assert "2 open connections have an id starting with fd2d" in info.value.message


def test_candidates_are_bounded():
    reg = ConnectionRegistry()
    for n in range(MAX_CANDIDATES + 5):
        reg.add(ConnectionRecord(f"ab{n:08d}", node="n1", user="u", path="/"))
    with pytest.raises(AmbiguousId) as info:
        reg.resolve("ab")
    assert len(info.value.candidates) == MAX_CANDIDATES
    assert info.value.message.endswith("and 5 more")


def test_selector_ids_accept_unique_prefixes(registry):
    """send --id / kick --id: a prefix selects its connection; an unknown one nothing."""
    assert [r.user for r in registry.select(Selector(ids=("a1", "nope")))] == ["cid"]
    with pytest.raises(AmbiguousId):
        registry.select(Selector(ids=("fd2d",)))


def test_the_candidates_cross_the_wire(registry):
    """The error reply carries ``candidates`` beside code and message; the client
    raises AmbiguousId with them."""
    with pytest.raises(AmbiguousId) as info:
        registry.resolve("fd")
    frame = wire.encode_error(3, info.value.code, info.value.message, info.value.details())
    error = wire.parse_message(frame).exception()
    assert isinstance(error, AmbiguousId)
    assert error.candidates == ("fd2d000001", "fd2d000002")
    assert isinstance(WsconsoleError.from_wire("ambiguous_id", "m"), AmbiguousId)

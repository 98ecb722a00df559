"""Filter values with wildcards: ``user=guest*``, ``path=/api/*``; exact names stay
index lookups, patterns are matched against the index's names (pure: the
pattern reader, the registry and the wire)."""

from __future__ import annotations

import json
import time

import pytest

from wsconsole.server import wire
from wsconsole.server.errors import BadPattern, SelectorError, WsconsoleError
from wsconsole.server.patterns import escape, is_pattern, parse_pattern
from wsconsole.server.registry import ConnectionRecord, ConnectionRegistry, Selector
from wsconsole.server.tap import selector_matches


def registry_of(*rows: tuple[str, str, str, tuple[str, ...]]) -> ConnectionRegistry:
    reg = ConnectionRegistry()
    for n, (user, path, _, topics) in enumerate(rows):
        record = ConnectionRecord(f"{n:010x}", node="n1", user=user, path=path,
                                  connected_at=float(n))
        reg.add(record)
        for topic in topics:
            reg.subscribe(record.id, topic)
    return reg


@pytest.fixture
def registry() -> ConnectionRegistry:
    return registry_of(
        ("guest-1", "/api/v1", "", ("room-1",)),
        ("guest-2", "/api/v2", "", ("room-2", "room-1")),
        ("guest-10", "/chat", "", ()),
        ("bulk-a", "/api", "", ("lobby",)),
        ("a*b", "/chat", "", ()),
        ("ann", "/feed", "", ()),
    )


def users(page) -> list[str]:
    return [record.user for record in page.records]


@pytest.mark.parametrize(("text", "matches", "misses"), [
    ("guest*", ["guest-1", "guest", "guest-10"], ["gues", "a-guest"]),
    ("*-1", ["guest-1", "-1"], ["guest-10"]),
    ("g?est-*", ["guest-2", "gxest-"], ["gest-2"]),
    ("/api/*", ["/api/v1", "/api/"], ["/api", "/apix/v1"]),
    ("a\\*b", ["a*b"], ["axb", "ab"]),
    ("a\\?", ["a?"], ["ab"]),
    ("x\\\\y", ["x\\y"], ["xy"]),
    ("[x]*", ["[x]1"], ["x1"]),
    ("*[x]", ["a[x]"], ["ax"]),
    ("Ann", ["Ann"], ["ann"]),
])
def test_wildcards_and_escapes(text: str, matches: list[str], misses: list[str]) -> None:
    """`*` is any run of characters, `?` one, `\\` makes them (and itself) literal;
    everything else, brackets included, is itself, case counting."""
    pattern = parse_pattern(text)
    assert all(pattern.matches(value) for value in matches)
    assert not any(pattern.matches(value) for value in misses)


def test_a_name_without_wildcards_is_exact() -> None:
    assert parse_pattern("ann").literal == "ann"
    assert parse_pattern("a\\*b").literal == "a*b"
    assert not is_pattern("a\\*b") and is_pattern("a*b")
    for name in ("a*b", "x\\y?", "plain"):
        assert parse_pattern(escape(name)).literal == name


@pytest.mark.parametrize("text", ["DOMAIN\\ann", "trailing\\"])
def test_a_stray_backslash_is_a_structured_error(text: str) -> None:
    """A backslash before anything but *, ? or \\ is refused, saying where, so
    that a name typed without escapes is never read as something else."""
    with pytest.raises(BadPattern) as info:
        parse_pattern(text, "user")
    error = info.value
    assert isinstance(error, SelectorError)
    assert error.code == "bad_pattern"
    assert error.details() == {"field": "user", "pattern": text, "position": text.index("\\")}
    assert "\\\\ is a backslash" in error.message


def test_list_filters_by_pattern(registry: ConnectionRegistry) -> None:
    """list: user, path and topic patterns, alone and combined with AND."""
    assert users(registry.query(user="guest*")) == ["guest-1", "guest-2", "guest-10"]
    assert registry.query(user="guest*").total == 3
    assert users(registry.query(path="/api/*")) == ["guest-1", "guest-2"]
    assert users(registry.query(user="*-1*", path="/api/*")) == ["guest-1"]
    # A connection in two matching topics is counted once.
    page = registry.query(topic="room-*")
    assert (users(page), page.total) == (["guest-1", "guest-2"], 2)
    assert users(registry.query(user="a\\*b")) == ["a*b"]
    assert users(registry.query(user="a*b")) == ["a*b"]  # the pattern: a, anything, b
    assert registry.query(user="nobody*").total == 0


def test_pattern_pages_follow_the_sort_and_cursor(registry: ConnectionRegistry) -> None:
    first = registry.query(user="guest*", sort="-user", limit=2)
    assert users(first) == ["guest-2", "guest-10"]
    rest = registry.query(user="guest*", sort="-user", limit=2, cursor=first.next_cursor)
    assert users(rest) == ["guest-1"] and rest.next_cursor is None


def test_selectors_take_patterns(registry: ConnectionRegistry) -> None:
    """send, disconnect and tap select with the same patterns (the control plane's
    selectors: from_dict)."""
    def wire(**fields) -> Selector:
        return Selector.from_dict(fields)

    assert sorted(r.user for r in registry.select(wire(user="guest-?"))) == [
        "guest-1", "guest-2"]
    assert sorted(r.user for r in registry.select(wire(user="guest*", topic="room-1"))) \
        == ["guest-1", "guest-2"]
    assert registry.count(path="/api*") == 3
    record = registry.get("0000000001")
    assert selector_matches(wire(user="guest*", topic="room-?"), record)
    assert not selector_matches(wire(path="/chat*"), record)


def test_a_selector_made_in_code_names_exact_users(registry: ConnectionRegistry) -> None:
    """An application that selects by a name a client chose (`to:*:hi`) never
    broadcasts: in code, `*` is an ordinary character, and on the wire (a cluster's
    other nodes) the name travels escaped."""
    assert registry.select(Selector(user="*")) == []
    assert [r.user for r in registry.select(Selector(user="a*b"))] == ["a*b"]
    assert not selector_matches(Selector(user="guest*"), registry.get("0000000000"))
    assert selector_matches(Selector(user="guest-1", topic="room-1"),
                            registry.get("0000000000"))
    forwarded = Selector.from_dict(Selector(user="*").to_dict())
    assert registry.select(forwarded) == []
    assert len(registry.select(Selector(user="*", patterns=True))) == 6
    # Patterns said in code are checked as the wire's are.
    with pytest.raises(BadPattern):
        Selector(user="x\\y", patterns=True)
    assert Selector(user="x\\y").user == "x\\y"  # an exact name may hold anything


def test_groups_change_the_names_a_pattern_sees() -> None:
    """The sorted names follow groups that come and go."""
    reg = registry_of(("guest-1", "/", "", ()), ("guest-2", "/", "", ()))
    reg.remove("0000000000")
    assert users(reg.query(user="guest*")) == ["guest-2"]
    reg.add(ConnectionRecord("00000000ff", node="n1", user="guest-3", path="/",
                             connected_at=5.0))
    assert users(reg.query(user="gu*")) == ["guest-2", "guest-3"]


def test_a_bad_pattern_is_refused_on_the_wire() -> None:
    """A list filter or a selector with a stray backslash is bad_pattern, with the
    field, the pattern and the position in the error object; the client side
    raises BadPattern with them."""
    for frame in (
        {"id": 1, "op": "list", "args": {"user": "x\\y"}},
        {"id": 2, "op": "send", "args": {"selector": {"user": "x\\y"}, "text": "hi"}},
    ):
        with pytest.raises(BadPattern) as info:
            wire.parse_request(json.dumps(frame))
        assert info.value.request_id == frame["id"]
        reply = json.loads(wire.encode_error(frame["id"], info.value.code, info.value.message,
                                             info.value.details()))
        assert reply["error"]["field"] == "user" and reply["error"]["position"] == 1
        again = WsconsoleError.from_wire(reply["error"]["code"], reply["error"]["message"],
                                         reply["error"])
        assert isinstance(again, BadPattern) and again.pattern == "x\\y"


def test_a_pattern_costs_the_names_not_the_records() -> None:
    """At 10,000 connections of 10,000 users, `user=u1*` is the 1,111 names of one
    bisected range of the sorted names (no record is looked at to find them), and
    `u1*9` tests only those names; the figures are printed, not asserted (a loaded
    machine would make a bound either flaky or meaningless)."""
    reg = ConnectionRegistry()
    for n in range(10_000):
        reg.add(ConnectionRecord(f"{n:010x}", node="n1", user=f"u{n}", path="/",
                                 connected_at=float(n)))
    names = reg._users.names("u1")
    assert len(names) == 1_111 and names == sorted(names)
    assert all(name.startswith("u1") for name in names)
    assert reg.query(user="u1*9").total == sum(1 for name in names if name.endswith("9"))
    timings = {}
    for pattern in ("u1*", "u1*9", "*9"):
        reg.query(user=pattern)  # the order's runs sorted once
        started = time.perf_counter()
        for _ in range(20):
            page = reg.query(user=pattern, sort="-msgs_in", limit=100)
        timings[pattern] = (time.perf_counter() - started) / 20
        assert len(page.records) == 100
    print("a page at 10,000 users: " + ", ".join(
        f"user={pattern} {seconds * 1000:.2f} ms" for pattern, seconds in timings.items()))


def test_sorted_names_follow_adds_and_removes_in_blocks() -> None:
    """The names a pattern bisects stay sorted through splits and joins of their
    blocks, and a prefix's range is exactly the names that start with it."""
    import random

    from wsconsole.server.indexes import BLOCK_SIZE, SortedNames

    rng = random.Random(7)
    names = SortedNames()
    present: set[str] = set()
    for step in range(6 * BLOCK_SIZE):
        name = f"u{rng.randrange(3 * BLOCK_SIZE)}"
        if name in present and step % 3:
            names.remove(name)
            present.discard(name)
        elif name not in present:
            names.add(name)
            present.add(name)
    assert list(names) == sorted(present) and len(names) == len(present)
    for prefix in ("", "u1", "u12", "u999", "v", "u"):
        assert names.starting_with(prefix) == sorted(n for n in present if n.startswith(prefix))
    with pytest.raises(ValueError):
        names.remove("absent")

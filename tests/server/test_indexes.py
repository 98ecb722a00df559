"""The registry's sorted indexes on their own, with plain objects: orders, cursors, counts."""

from __future__ import annotations

import random

import pytest

from wsconsole.server.indexes import BLOCK_SIZE, GroupIndex, Segment, SortedRecords


class Item:
    """The two attributes an index reads, and nothing else."""

    __slots__ = ("id", "value")

    def __init__(self, id: str, value: object) -> None:
        self.id = id
        self.value = value

    def __repr__(self) -> str:
        return f"Item({self.id!r}, {self.value!r})"


def keys(items) -> list[tuple]:
    return [(item.value, item.id) for item in items]


def test_sorted_records_stay_in_order_through_random_adds_and_removes():
    """Thousands of random adds and removes (blocks split and join) keep (value, id) order,
    and every cursor position resumes in both directions where it should."""
    rng = random.Random(2)
    index = SortedRecords("value")
    alive: dict[str, Item] = {}
    for step in range(12 * BLOCK_SIZE):
        if alive and rng.random() < 0.45:
            index.remove(alive.pop(rng.choice(list(alive))))
        else:
            item = Item(f"{rng.getrandbits(32):08x}", rng.randrange(300))
            alive[item.id] = item
            index.add(item)
    expected = sorted(keys(alive.values()))
    assert len(index) == len(alive) and keys(index) == expected
    for cursor in rng.sample(expected, 50) + [(-1, ""), (10**9, "")]:
        assert keys(index.ascending(cursor)) == [k for k in expected if k > cursor]
        assert keys(index.descending(cursor)) == [k for k in reversed(expected) if k < cursor]
        assert index.rank(cursor) == sum(1 for k in expected if k < cursor)
    assert keys(index.ascending()) == expected
    assert keys(index.descending()) == expected[::-1]
    # Shrinking the fleet joins blocks back together.
    for item in list(alive.values())[: len(alive) - 10]:
        index.remove(item)
    assert len(index._blocks) == 1


def test_an_empty_index_yields_nothing():
    """Empty: no rows in either direction, rank 0, removing is a ValueError."""
    index = SortedRecords("value")
    assert list(index.ascending()) == list(index.descending((1, "a"))) == []
    assert index.rank((5, "x")) == 0
    with pytest.raises(ValueError):
        index.remove(Item("a", 1))


KEPT = {"value"}
"""The segment tests keep their one order up to date, unless a test says otherwise."""


def test_a_value_changed_behind_the_index_still_leaves_it():
    """A record whose indexed value changed while indexed is still found and removed
    (the slow way), instead of haunting the index."""
    index = SortedRecords("value")
    items = [Item(f"{i:04}", i) for i in range(3 * BLOCK_SIZE)]
    for item in items:
        index.add(item)
    items[10].value = 10**6
    index.remove(items[10])
    assert items[10] not in list(index) and len(index) == len(items) - 1
    segment = Segment(["value"])
    segment.resort("value")
    for item in items[:50]:
        segment.add(item, KEPT)
    items[20].value = -5
    segment.remove(items[20], KEPT)
    assert items[20] not in segment.run("value") and len(segment) == 49


def test_a_kept_run_is_maintained_in_value_then_id_order():
    """A kept run follows adds, removes, a moved record and re-sorts, ties by id."""
    rng = random.Random(4)
    segment = Segment(["value"])
    segment.resort("value")
    items = [Item(f"{rng.getrandbits(32):08x}", 0) for _ in range(300)]
    for item in items:
        segment.add(item, KEPT)
    assert not segment.stale and keys(segment.runs["value"]) == sorted(keys(items))
    for item in items:
        item.value = rng.randrange(5)
    segment.moved("value", KEPT)
    assert not segment.stale and keys(segment.runs["value"]) == sorted(keys(items))
    segment.detach(items[0], KEPT)
    items[0].value = 99
    segment.attach(items[0], KEPT)
    assert segment.runs["value"][-1] is items[0]
    for item in items[:100]:
        segment.remove(item, KEPT)
    assert not segment.stale and keys(segment.runs["value"]) == sorted(keys(items[100:]))


def test_a_run_nobody_keeps_goes_stale_and_is_rebuilt_when_read():
    """A run not kept becomes stale at the first change, takes no inserts or removals
    meanwhile, and reading it rebuilds it in (value, id) order from the members."""
    segment = Segment(["value"])
    assert segment.stale == {"value"}  # nothing to sort until somebody asks
    items = [Item(f"{i:03}", i % 7) for i in range(100)]
    for item in items:
        segment.add(item, KEPT)
    assert segment.run("value") is segment.runs["value"] and not segment.stale
    segment.add(Item("zzz", -1), set())
    assert segment.stale == {"value"}
    for item in items[:10]:
        item.value = 100 - int(item.id)
    segment.moved("value", set())
    segment.remove(items[50], set())
    run = segment.run("value")
    assert keys(run) == sorted(keys(segment.by_id)) and len(run) == 100
    assert run[0].id == "zzz" and not segment.stale


def test_a_group_knows_while_its_members_joined_in_order():
    """in_order holds while each member joined with a value above the last one's,
    survives removals, is lost on a member out of order (or a tie) and comes back
    once the group is empty."""
    groups = GroupIndex("value")
    items = [Item(f"{i:03}", i) for i in range(10)]
    for item in items[:5]:
        groups.add("g", item)
    assert groups.in_order("g") and groups.in_order("nobody")
    groups.discard("g", items[4].id)
    groups.add("g", items[5])
    assert groups.in_order("g")
    groups.add("g", Item("tie", 5))
    assert not groups.in_order("g")
    for item in list(groups.bucket("g").values()):
        groups.discard("g", item.id)
    groups.add("g", items[9])
    groups.add("g", items[1])
    assert not groups.in_order("g")
    assert not GroupIndex().in_order("g")  # no order to keep

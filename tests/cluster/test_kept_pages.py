"""A node's kept `list` pages and the requester's held ones, with plain
registries (no Redis, no sockets): a page answered by its version alone is
exactly the page that would be made anew, whatever changed since."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from wsconsole.server import wire
from wsconsole.server.cluster import ClusterSettings
from wsconsole.server.cluster import fleet as cluster_fleet
from wsconsole.server.cluster.fleet import LIVE_FIELDS, PAGES_KNOWN, ClusterFleet
from wsconsole.server.registry import SUMMARY_FIELDS, ConnectionRecord, ConnectionRegistry

ARGS = {"user": None, "path": None, "topic": None, "id_prefix": None, "sort": "-msgs_in",
        "limit": 3, "cursor": None, "groups": True, "group_limit": 10}
FIXED_FIELDS = {"id", "node", "user", "path", "query", "remote", "connected_at"}
"""The fields of a row that never change while its record is registered."""
SAMPLED_FIELDS = {"last_activity", "buffered", "latency"}
"""The fields of a row only the registry's sampler writes (samples_version)."""


class StandInHub:
    """What a ClusterFleet reads of its hub for a page: a registry and a name."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = ConnectionRegistry()

    def add(self, user: str, msgs_in: int = 0, *topics: str,
            connected_at: float | None = None) -> ConnectionRecord:
        record = ConnectionRecord(
            f"{self.node}/{self.registry.new_id()}", node=self.node, user=user, path="/",
            connected_at=len(self.registry) + 1.0 if connected_at is None else connected_at)
        record.msgs_in = msgs_in
        self.registry.add(record)
        for topic in topics:
            self.registry.subscribe(record.id, topic)
        return record


def fleet_of(node: str) -> tuple[ClusterFleet, StandInHub]:
    hub = StandInHub(node)
    settings = ClusterSettings("redis://127.0.0.1", secret=b"kept-pages-secret-0123456789abcdef")
    return ClusterFleet(hub, settings), hub  # type: ignore[arg-type]


def fresh(fleet: ClusterFleet, args: dict[str, Any] = ARGS) -> dict[str, Any]:
    """The page as a node without kept pages answers it now."""
    fleet.page_cache = False
    try:
        answer = fleet._local_page(args, columns=True)
    finally:
        fleet.page_cache = True
    return {name: answer[name] for name in ("fields", "rows", "keys", "total", "next_cursor")}


def test_every_field_of_a_row_is_fixed_live_or_versioned():
    """What a kept page checks covers every field a row shows: fixed ones, the
    live ones it compares, the sampled ones (a sample that moves one changes
    samples_version) and topics (a subscribe changes the version)."""
    assert set(SUMMARY_FIELDS) == (FIXED_FIELDS | set(LIVE_FIELDS) | SAMPLED_FIELDS
                                   | {"topics"})


def test_a_kept_page_is_answered_by_its_version_until_anything_on_it_changes():
    """The same request while nothing changed is answered by its page_version
    alone; a counter that moved on a shown row, a sample that moved an order,
    a connection that came or went and a subscribe each make the page anew,
    equal to one made without kept pages."""
    fleet, hub = fleet_of("b")
    records = [hub.add(f"user{i}", i) for i in range(5)]
    first = fleet._local_page(ARGS, columns=True)
    version = first["page_version"]
    assert first["rows"] and {k: first[k] for k in fresh(fleet)} == fresh(fleet)
    again = fleet._local_page(ARGS, columns=True, page_known=version,
                              known=first["groups_version"])
    assert again == {"page_version": version, "count": 5,
                     "groups_version": first["groups_version"]}

    def changed(step) -> None:
        nonlocal version
        step()
        answer = fleet._local_page(ARGS, columns=True, page_known=version)
        assert answer["page_version"] != version
        assert {k: answer[k] for k in fresh(fleet)} == fresh(fleet)
        version = answer["page_version"]
        assert fleet._local_page(ARGS, columns=True, page_known=version).keys() == {
            "page_version", "count", "groups", "groups_truncated", "groups_version"}

    def counted() -> None:  # the hub's hot path: no version, no sample
        records[4].msgs_in += 1

    changed(counted)
    # A row not on the page moving changes nothing of it, until a sample puts
    # it on the page (-msgs_in orders by the sampled count).
    records[0].msgs_in += 100
    assert fleet._local_page(ARGS, columns=True, page_known=version)["page_version"] == version
    changed(lambda: hub.registry.sample_all(10.0))
    assert fresh(fleet)["rows"][0][0] == records[0].id
    changed(lambda: hub.registry.sample_all(11.0, lambda record: (7, 0.0)))  # buffered
    records[4].kernel_queued = 5  # as a detail measures it
    changed(lambda: None)
    changed(lambda: hub.add("late", 1000))
    changed(lambda: hub.registry.remove(records[3].id))
    changed(lambda: hub.registry.subscribe(records[4].id, "lobby"))


def test_another_request_or_another_holder_gets_the_rows():
    """A version is the page of one request: another cursor, sort or filter has
    its own, and a requester that names an old version gets the page."""
    fleet, hub = fleet_of("b")
    for i in range(5):
        hub.add(f"user{i}", i)
    first = fleet._local_page(ARGS, columns=True)
    other = fleet._local_page({**ARGS, "cursor": first["next_cursor"]}, columns=True,
                              page_known=first["page_version"])
    assert other["rows"] and other["page_version"] != first["page_version"]
    stale = fleet._local_page(ARGS, columns=True, page_known="someone.1")
    assert stale["rows"] == first["rows"] and stale["page_version"] == first["page_version"]


def test_a_page_larger_than_the_console_asks_for_is_made_anew_and_not_kept():
    """A script's page of 1,000 is not kept (what pages keep stays bounded): it
    carries no version and is made anew however often it is asked for, while a
    console-sized page beside it is kept."""
    fleet, hub = fleet_of("b")
    for i in range(5):
        hub.add(f"user{i}", i)
    large = {**ARGS, "limit": cluster_fleet._KEPT_LIMIT + 1}
    first = fleet._local_page(large, columns=True)
    again = fleet._local_page(large, columns=True, page_known=first.get("page_version"))
    assert first.get("page_version") is None and again.get("page_version") is None
    assert again["rows"] == first["rows"] and len(again["rows"]) == 5
    small = fleet._local_page(ARGS, columns=True)
    assert small["page_version"] is not None
    assert len(fleet._kept_pages) == 1


def test_a_requester_merges_held_pages_as_it_merges_sent_ones():
    """A requester that holds the other nodes' pages asks with pages_known and
    merges the pages they answer by version as it would the rows; once a node's
    page changed, the merge shows it."""
    requester, own = fleet_of("a")
    nodes = {name: fleet_of(name) for name in ("b", "c")}
    others = [fleet for fleet, _ in nodes.values()]
    for index, hub in enumerate([own, *(hub for _, hub in nodes.values())]):
        for i in range(3):
            hub.add(f"{hub.node}{i}", 10 * i + index)
    asked: list[dict[str, Any]] = []

    async def scatter(op: str, args: dict[str, Any], *, targets: list[str], timeout: Any,
                      role: Any, local: Any, extra: Any = None) -> Any:
        asked.append(extra or {})
        gathered = cluster_fleet._Gathered()
        gathered.results[requester.node] = await local()
        for fleet in others:
            known = (extra or {}).get(PAGES_KNOWN, {}).get(fleet.node)
            gathered.results[fleet.node] = fleet._local_page(
                {**ARGS, **args}, columns=True, page_known=known)
        return gathered

    requester._scatter = scatter  # type: ignore[method-assign]

    def page() -> dict[str, Any]:
        args = {k: v for k, v in ARGS.items() if k != "group_limit"}
        answer = asyncio.run(requester.list(**args, group_limit=10, node=None, timeout=None))
        assert not answer.missing
        return answer.result

    def fresh_merge() -> dict[str, Any]:
        requester.page_cache = False
        for fleet in others:
            fleet.page_cache = False
        try:
            return page()
        finally:
            requester.page_cache = True
            for fleet in others:
                fleet.page_cache = True

    first = page()
    assert [row["msgs_in"] for row in first["connections"]] == [22, 21, 20]
    second = page()
    assert set(asked[-1][PAGES_KNOWN]) == {"b", "c"}
    assert second == first and second["connections"] is not first["connections"]
    b = nodes["b"][1].registry
    (moved,) = [record for record in b.query(user="b2").records]
    assert moved.msgs_in == 21
    moved.msgs_in = 99  # on b's page: shown at once, ordered by its sample later
    third = page()
    assert [row["msgs_in"] for row in third["connections"]] == [22, 99, 20]
    assert third == fresh_merge()
    b.sample_all(5.0)
    fourth = page()
    assert [row["msgs_in"] for row in fourth["connections"]] == [99, 22, 20]
    assert fourth == fresh_merge()


def test_a_node_restarted_under_its_name_never_answers_a_version_of_its_last_life():
    """A node that restarts under the same name counts its pages from one again:
    its versions are its instance's, so one equal in count to a version the
    requester holds from the last life still gets the page, not the old rows."""
    before, hub = fleet_of("b")
    hub.add("ann", 1)
    held = before._local_page(ARGS, columns=True)
    restarted, hub = fleet_of("b")  # its first page is its first, as the last one's was
    hub.add("bob", 2)
    answer = restarted._local_page(ARGS, columns=True, page_known=held["page_version"])
    assert answer["page_version"] != held["page_version"]
    user = SUMMARY_FIELDS.index("user")
    assert [row[user] for row in answer["rows"]] == ["bob"]


def test_pages_kept_and_held_equal_pages_made_anew_whatever_happens_between(monkeypatch):
    """Over a seeded run of what moves a fleet (connections coming and going,
    subscribes, counters on the hot path, samples, a node that does not answer,
    a node restarted under its name), each page (a few filters, sorts, limits,
    the next cursor) from kept and held pages, each node asked for about as
    many rows as it gave the last page (takes, with a margin of one row here,
    so that pages often need the rest of a node's rows), is the page made anew
    from every node's whole page."""
    import random

    monkeypatch.setattr(cluster_fleet, "_TAKE_MARGIN", 1)
    rng = random.Random(6)
    requester, own = fleet_of("a")
    fleets = {"a": (requester, own), "b": fleet_of("b"), "c": fleet_of("c")}
    silent: set[str] = set()

    async def scatter(op: str, args: dict[str, Any], *, targets: list[str], timeout: Any,
                      role: Any, local: Any, extra: Any = None) -> Any:
        gathered = cluster_fleet._Gathered()
        if local is not None:
            gathered.results["a"] = await local()
        # The first round asks every node (this table knows none: no heartbeats
        # here); a second one the nodes it names.
        for name in ("b", "c") if local is not None else targets:
            if name in silent:
                gathered.missing[name] = "no reply before the deadline"
                continue
            full = {**ARGS, "user": None, "cursor": None, "groups": False, **args}
            gathered.results[name] = fleets[name][0]._list_part(full, extra or {})
        return gathered

    requester._scatter = scatter  # type: ignore[method-assign]

    def page(args: dict[str, Any], kept: bool) -> Any:
        for fleet, _ in fleets.values():
            fleet.page_cache = fleet.groups_cache = fleet.learn_takes = kept
        try:
            answer = asyncio.run(requester.list(**args, node=None, timeout=None))
        finally:
            for fleet, _ in fleets.values():
                fleet.page_cache = fleet.groups_cache = fleet.learn_takes = True
        return answer.result, answer.missing

    cursors: dict[Any, Any] = {}
    stills = 0
    for _ in range(1000):
        name = rng.choice("abc")
        fleet, hub = fleets[name]
        registry = hub.registry
        records = registry.query(limit=1000).records
        move = rng.random() if rng.random() < 0.15 else 1.0
        if move < 0.01 and name != "a":
            fleet, restarted = fleet_of(name)  # a new process: a new instance
            for record in records[:3]:
                restarted.add(record.user, record.msgs_in)
            fleets[name] = (fleet, restarted)
        elif move < 0.08 or len(records) < 3:
            hub.add(rng.choice(["ann", "bob", "cy"]), rng.randrange(5))
        elif move < 0.12:
            registry.remove(rng.choice(records).id)
        elif move < 0.18:
            change = registry.subscribe if rng.random() < 0.6 else registry.unsubscribe
            change(rng.choice(records).id, "lobby")
        elif move < 0.35:
            record = rng.choice(records[:5])  # on the first pages, mostly
            if rng.random() < 0.5:  # as a detail measures it
                record.kernel_queued = rng.choice([None, 0, 5])
            else:  # as the hub's hot path counts
                field = rng.choice(LIVE_FIELDS[:4])
                setattr(record, field, getattr(record, field) + 1)
        elif move < 0.45:
            now = 100.0 + rng.random()
            if rng.random() < 0.5:
                registry.sample_step(now, lambda record: (rng.randrange(2), 0.0))
            else:
                registry.sample_all(now)
        else:
            silent.clear()
            if rng.random() < 0.1:
                silent.add(rng.choice("bc"))
            args = {**ARGS, "user": rng.choice([None, "ann"]),
                    "sort": rng.choice(["connected_at", "-msgs_in", "buffered"]),
                    "limit": rng.choice([2, 5, 8]), "groups": rng.random() < 0.5}
            key = (args["user"], args["sort"], args["limit"])
            if cursors.get(key) and rng.random() < 0.5:
                args["cursor"] = cursors[key]
            before = sum(fleet.pages_still for fleet, _ in fleets.values())
            kept = page(dict(args), True)
            stills += sum(fleet.pages_still for fleet, _ in fleets.values()) - before
            assert kept == page(dict(args), False), args
            cursors[key] = kept[0]["next_cursor"]
    assert stills > 100  # kept pages were answered, not only pages made anew
    assert requester.second_rounds > 10  # and pages completed by a second round


def test_each_node_sends_about_the_rows_it_gave_and_the_rest_only_when_needed():
    """A requester learns how many rows each node gives a page and asks for
    those and a margin; when the order moves so that a node's rows past the
    ones it sent belong on the page, it asks that node for the rest (one more
    round), and the page is the one made from every node's whole page. A node
    that answers the first round and not the second is named missing, and the
    page stops where what is known of it is sure: its cursor resumes there."""
    requester, own = fleet_of("a")
    other, theirs = fleet_of("b")
    for index in range(45):
        own.add("ann", msgs_in=2 * index)  # a: the even counts 0..88
        theirs.add("bob", msgs_in=2 * index + 1)  # b: the odd counts 1..89
    asked: list[dict[str, Any]] = []
    silent_second = False

    async def scatter(op: str, args: dict[str, Any], *, targets: list[str], timeout: Any,
                      role: Any, local: Any, extra: Any = None) -> Any:
        gathered = cluster_fleet._Gathered()
        if local is not None:
            gathered.results["a"] = await local()
        if local is not None or "b" in targets:
            asked.append({"args": args, "takes": (extra or {}).get(cluster_fleet.TAKES)})
            if silent_second and local is None:
                gathered.missing["b"] = "no reply before the deadline"
            else:
                full = {**ARGS, "user": None, "cursor": None, "groups": False, **args}
                gathered.results["b"] = other._list_part(full, extra or {})
        return gathered

    requester._scatter = scatter  # type: ignore[method-assign]
    args = {**ARGS, "limit": 40, "groups": False}

    def ids(answer: Any) -> list[str]:
        return [row["id"] for row in answer.result["connections"]]

    def whole() -> list[str]:
        records = sorted([*own.registry.query(limit=1000).records,
                          *theirs.registry.query(limit=1000).records],
                         key=lambda record: (-record.msgs_in, record.id))
        return [record.id for record in records[:40]]

    first = asyncio.run(requester.list(**args, node=None, timeout=None))
    assert ids(first) == whole() and asked[-1]["takes"] is None  # 40 rows asked of b
    won = sum(1 for id in ids(first) if id.startswith("b/"))
    assert won == 20  # 89..51, beside a's 88..50
    # Next time b is asked for those and half as many again.
    second = asyncio.run(requester.list(**args, node=None, timeout=None))
    assert asked[-1]["takes"] == {"b": 30} and len(asked) == 2
    assert ids(second) == whole() and requester.second_rounds == 0
    # Now b holds the busiest 40 connections: its 30 rows sent are not enough.
    for record in theirs.registry.query(limit=1000).records:
        record.msgs_in += 1000
    theirs.registry.sample_all(200.0)
    third = asyncio.run(requester.list(**args, node=None, timeout=None))
    assert ids(third) == whole() and requester.second_rounds == 1
    assert asked[-1]["args"]["limit"] == 10 and asked[-1]["args"]["cursor"]
    assert third.missing == {}
    # And b has learned to send the whole page (40 and a margin: all 40).
    asyncio.run(requester.list(**args, node=None, timeout=None))
    assert asked[-1]["takes"] is None
    # b answers the first round and not the second: a shorter, sure page.
    requester._takes[(*cluster_fleet._page_key({**args, "cursor": None}), None)] = {"b": 5}
    silent_second = True
    partial = asyncio.run(requester.list(**args, node=None, timeout=None))
    assert "b" in partial.missing and "part of its page" in partial.missing["b"]
    assert ids(partial) == whole()[:5]  # b's 5 busiest, all ahead of a's
    rest = asyncio.run(requester.list(**{**args, "cursor": partial.result["next_cursor"]},
                                      node=None, timeout=None))
    assert ids(rest)[:1] == whole()[5:6]


@pytest.fixture(autouse=True)
def _no_loop_left():
    yield
    asyncio.set_event_loop(None)


def test_a_merged_page_is_written_from_its_rows_text_and_refused_as_a_single_node_would():
    """A cluster page's rows reach the reply as their JSON text, which reads
    back as the rows; a row of this node's that JSON cannot carry (a NaN, a
    lone surrogate) fails the reply as the standard library's encoding does
    (orjson would write a NaN as null)."""
    fleet, hub = fleet_of("a")
    records = [hub.add(f"user{i}", i) for i in range(5)]

    def reply() -> str:
        answer = asyncio.run(fleet.list(**ARGS, node="a", timeout=None))
        assert isinstance(answer.result["connections"], wire.EncodedList)
        frame = wire.encode_reply(1, answer.result)
        plain = {**answer.result, "connections": list(answer.result["connections"])}
        assert json.loads(frame) == json.loads(wire.encode_reply(1, plain))
        return frame

    assert [row["user"] for row in json.loads(reply())["result"]["connections"]] == [
        "user4", "user3", "user2"]
    records[4].msgs_in += 1  # the page is made anew
    records[4].latency = float("nan")
    with pytest.raises(ValueError):
        wire.encode_reply(1, asyncio.run(fleet.list(**ARGS, node="a", timeout=None)).result)
    records[4].latency = None
    records[3].user = "\ud800"
    records[4].msgs_in += 1
    with pytest.raises(ValueError):
        wire.encode_reply(1, asyncio.run(fleet.list(**ARGS, node="a", timeout=None)).result)


def test_every_field_of_a_row_that_holds_a_float_is_checked_for_nan():
    """The merged rows' NaN check reads FLOAT_FIELDS only: every field whose
    value is a float on a sampled record is among them (fails if a float
    field is added to the rows and not to FLOAT_FIELDS)."""
    hub = StandInHub("a")
    record = hub.add("user", 3, "room")
    record.last_activity, record.latency, record.buffered = 2.5, 0.125, 4
    floats = {name for name, value in record.summary().items() if isinstance(value, float)}
    assert floats and floats <= set(cluster_fleet.FLOAT_FIELDS)
    assert set(cluster_fleet.FLOAT_FIELDS) <= set(SUMMARY_FIELDS)


def _requester_with(names: tuple[str, ...], *, silent_second: tuple[str, ...] = (),
                    answers: dict[tuple[str, bool], Any] | None = None) -> Any:
    """Requester a and nodes ``names``, each answering through its own
    ``_list_part`` (or ``answers[(node, first_round)]``); the nodes in
    ``silent_second`` do not answer a second round."""
    requester, own = fleet_of("a")
    fleets = {name: fleet_of(name) for name in names}

    async def scatter(op: str, args: dict[str, Any], *, targets: list[str], timeout: Any,
                      role: Any, local: Any, extra: Any = None) -> Any:
        gathered = cluster_fleet._Gathered()
        first = local is not None
        if first:
            gathered.results["a"] = await local()
        for name in names if first else targets:
            if not first and name in silent_second:
                gathered.missing[name] = "no reply before the deadline"
            elif answers and (name, first) in answers:
                gathered.results[name] = answers[(name, first)](args, extra)
            else:
                full = {**ARGS, "user": None, "cursor": None, "groups": False, **args}
                gathered.results[name] = fleets[name][0]._list_part(full, extra or {})
        return gathered

    requester._scatter = scatter  # type: ignore[method-assign]
    return requester, own, fleets


def _page(requester: Any, **args: Any) -> Any:
    return asyncio.run(requester.list(**{**ARGS, "groups": False, **args}, node=None,
                                      timeout=None))


def _shown(answer: Any) -> list[tuple[str, int]]:
    return [(row["node"], row["msgs_in"]) for row in answer.result["connections"]]


def test_nodes_that_do_not_answer_the_rest_of_their_page_leave_a_shorter_sure_one():
    """b and c sent their first 3 rows and answer no second round: both are
    named missing, the page stops at the first of their last rows sent, and
    its cursor resumes there, with no row of either node skipped."""
    requester, _, fleets = _requester_with(("b", "c"), silent_second=("b", "c"))
    for index in range(10):
        fleets["b"][1].add("u", 100 - index)
        fleets["c"][1].add("u", 50 - index)
    requester._takes[(*cluster_fleet._page_key({**ARGS, "limit": 20}), None)] = {"b": 3, "c": 3}
    partial = _page(requester, limit=20)
    assert set(partial.missing) == {"b"}  # c's 3 rows are past the page's end anyway
    assert "part of its page" in partial.missing["b"]
    assert _shown(partial) == [("b", 100), ("b", 99), ("b", 98)]
    rest = _page(requester, limit=20, cursor=partial.result["next_cursor"])
    assert _shown(rest) == [*(("b", value) for value in range(97, 90, -1)),
                            *(("c", value) for value in range(50, 40, -1))]
    assert rest.missing == {}
    # Both short and both silent: the first of their boundaries, both named.
    requester, _, fleets = _requester_with(("b", "c"), silent_second=("b", "c"))
    for index in range(10):
        fleets["b"][1].add("u", 100 - 2 * index)  # 100, 98, ...
        fleets["c"][1].add("u", 99 - 2 * index)   # 99, 97, ...
    requester._takes[(*cluster_fleet._page_key({**ARGS, "limit": 20}), None)] = {"b": 3, "c": 3}
    partial = _page(requester, limit=20)
    assert set(partial.missing) == {"b"}  # its 96 comes first: c's rows past 95 come later
    assert [value for _, value in _shown(partial)] == [100, 99, 98, 97, 96]
    rest = _page(requester, limit=20, cursor=partial.result["next_cursor"])
    assert [value for _, value in _shown(rest)] == list(range(95, 80, -1))  # 95..81


def test_rows_that_move_between_the_two_rounds_are_neither_repeated_nor_lost():
    """A sample moves b's 99 past its last row sent while the requester asks
    for the rest: the row is shown once, and no row of b is skipped on the
    page or the next one."""
    state: dict[str, Any] = {}

    def first_round(args: dict[str, Any], extra: Any) -> Any:
        answer = state["b"]._list_part({**ARGS, "user": None, "cursor": None,
                                        "groups": False, **args}, extra or {})
        state["r99"].msgs_in = 97  # behind 98 now, as b's sampler will see it
        state["hub"].registry.sample_all(500.0)
        return answer

    requester, own, fleets = _requester_with(("b",), answers={("b", True): first_round})
    state["b"], state["hub"] = fleets["b"]
    for index in range(10):
        own.add("u", 50 - index)
    records = [fleets["b"][1].add("u", value) for value in (100, 99, 98, 97, 96, 95, 94)]
    state["r99"] = records[1]
    requester._takes[(*cluster_fleet._page_key({**ARGS, "limit": 6}), None)] = {"b": 3}
    page = _page(requester, limit=6)
    following = _page(requester, limit=6, cursor=page.result["next_cursor"])
    shown = [*_shown(page), *_shown(following)]
    ids = [row["id"] for answer in (page, following) for row in answer.result["connections"]]
    assert len(ids) == len(set(ids))  # no row twice
    # Every row of b, 99 as the first round showed it, and then a's.
    assert shown[:8] == [("b", 100), ("b", 99), ("b", 98), ("b", 97), ("b", 96), ("b", 95),
                         ("b", 94), ("a", 50)] and page.missing == {}


def test_an_answer_the_merge_could_not_compare_is_named_and_the_page_stands():
    """A node whose keys are not values of the order (a text in a numeric
    order, a list for an id), or whose rows are not objects, is named
    malformed; the others' page is merged as ever."""
    def objects(keys: list[Any], rows: list[Any]) -> Any:
        return lambda args, extra: {"connections": rows, "keys": keys, "total": 1,
                                    "count": 1, "next_cursor": None}

    def columns(args: dict[str, Any], extra: Any) -> Any:
        row = [None] * len(SUMMARY_FIELDS)
        row[SUMMARY_FIELDS.index("id")] = "c/1"
        return {"fields": list(SUMMARY_FIELDS), "rows": [row], "keys": ["zz"], "total": 1,
                "count": 1, "next_cursor": None}

    def odd_fields(args: dict[str, Any], extra: Any) -> Any:
        answer = columns(args, extra)
        answer["fields"] = [*answer["fields"], ["x"]]  # a name that is no text
        answer["rows"] = [[*row, 1] for row in answer["rows"]]
        answer["keys"] = [50]
        return answer

    def text_counts(args: dict[str, Any], extra: Any) -> Any:
        answer = {**columns(args, extra), "keys": [50]}
        answer["groups"] = {"users": {"ann": "7"}}
        return answer

    for answer, groups in ((objects([["zz", "c/1"]], [{"id": "c/1"}]), False),
                           (objects([[50, ["c", 1]]], [{"id": "c/1"}]), False),
                           (objects([[50, "c/1"]], [[1, 2]]), False), (columns, False),
                           (odd_fields, False), (text_counts, True)):
        requester, own, _ = _requester_with(("c",), answers={("c", True): answer})
        own.add("u", 100)
        page = _page(requester, limit=20, groups=groups)
        assert page.missing == {"c": "malformed list answer"}
        assert _shown(page) == [("a", 100)]


def test_a_row_of_the_requesters_own_that_goes_meanwhile_hides_no_other_row():
    """The requester's own first row closes between its first page and the
    merge: its own whole page is made again, and the others' pages are checked
    again against it, so that b's second row (open throughout) is asked for
    and shown, not skipped by this page and the next."""
    state: dict[str, Any] = {}

    def b_first(args: dict[str, Any], extra: Any) -> Any:
        state["own"].registry.remove(state["gone"].id)  # a's row at 1 closes now
        return state["b"]._list_part({**ARGS, "user": None, "cursor": None,
                                      "groups": False, **args}, extra or {})

    requester, own, fleets = _requester_with(("b", "c"), answers={("b", True): b_first})
    state["own"], state["b"] = own, fleets["b"][0]
    state["gone"] = own.add("u", connected_at=1.0)
    own.add("u", connected_at=100.0)
    fleets["b"][1].add("u", connected_at=2.0)
    fleets["b"][1].add("u", connected_at=5.0)
    fleets["c"][1].add("u", connected_at=1.5)
    args = {"sort": "connected_at", "limit": 3}
    requester._takes[(*cluster_fleet._page_key({**ARGS, **args}), None)] = {"a": 1, "b": 1}
    page = _page(requester, **args)
    requester._takes.clear()
    following = _page(requester, **args, cursor=page.result["next_cursor"])
    shown = [row["connected_at"] for answer in (page, following)
             for row in answer.result["connections"]]
    assert shown == [1.5, 2.0, 5.0, 100.0] and page.missing == {}


def test_pages_walked_by_cursor_with_takes_and_failed_second_rounds_are_the_order():
    """Randomized over 80 seeded fleets (some nodes answering as objects and
    ignoring takes, any takes, pages kept or not, any order): with values
    fixed between requests, every page is the true merged order after its
    cursor, or a prefix of it that ends short for exactly one node named
    missing (one that sent part of its page and not the rest); its cursor
    resumes at its last row, and the pages walked to the end are the whole
    order, no row twice. With rows moving, closing and sampled again between
    the rounds, no row is shown twice and no row that did not move, sorting
    before the page's last row, is left out."""
    import random

    from wsconsole.server.errors import InternalError
    from wsconsole.server.registry import SORTED_BY, decode_cursor

    second_rounds = short_pages = 0
    for seed in range(80):
        rng = random.Random(seed)
        requester, own = fleet_of("a")
        fleets = {"a": (requester, own), "b": fleet_of("b"), "c": fleet_of("c")}
        older = {name for name in "bc" if rng.random() < 0.2}
        serial = [0]

        def add(name: str) -> None:
            hub = fleets[name][1]
            serial[0] += 1
            record = ConnectionRecord(
                f"{name}/{hub.registry.new_id()}", node=name,
                user=rng.choice(["ann", "bob", "cy", "dee"]), path="/",
                connected_at=float(rng.randrange(40) if rng.random() < 0.5 else serial[0]))
            record.msgs_in = rng.randrange(30)
            hub.registry.add(record)

        for name in "abc":
            for _ in range(rng.randrange(14)):
                add(name)
            fleets[name][1].registry.sample_all(100.0)
        state: dict[str, Any] = {"silent1": set(), "silent2": set(), "failing2": set(),
                                 "between": None, "after_own": False}

        async def scatter(op: str, args: dict[str, Any], *, targets: list[str], timeout: Any,
                          role: Any, local: Any, extra: Any = None) -> Any:
            gathered = cluster_fleet._Gathered()
            first = local is not None
            if first:
                gathered.results["a"] = await local()
            if state["between"] is not None and (first == state["after_own"]):
                move, state["between"] = state["between"], None
                move()
            for name in ("b", "c") if first else targets:
                if name in state["silent1" if first else "silent2"]:
                    gathered.missing[name] = "no reply before the deadline"
                elif not first and name in state["failing2"]:
                    gathered.errors[name] = InternalError("boom")
                else:
                    full = {**ARGS, "user": None, "cursor": None, "groups": False, **args}
                    node = fleets[name][0]
                    gathered.results[name] = (node._local_page(full, columns=False)
                                              if name in older
                                              else node._list_part(full, extra or {}))
            return gathered

        requester._scatter = scatter  # type: ignore[method-assign]
        sort = rng.choice(["connected_at", "-connected_at", "user", "-user", "id", "-id",
                           "msgs_in", "-msgs_in"])
        limit = rng.choice([1, 2, 3, 5, 8])
        for node, _ in fleets.values():
            node.page_cache = node.groups_cache = rng.random() < 0.6
        attribute, descending = SORTED_BY[sort.lstrip("-")], sort.startswith("-")

        def key(record: ConnectionRecord) -> tuple[Any, str]:
            return (getattr(record, attribute), record.id)

        def records() -> list[ConnectionRecord]:
            return [record for name in "abc"
                    for record in fleets[name][1].registry.query(limit=1000).records]

        def order(names: Any, after: Any) -> list[str]:
            chosen = sorted((record for record in records() if record.node in names),
                            key=key, reverse=descending)
            return [record.id for record in chosen if after is None or (
                key(record) < after if descending else key(record) > after)]

        def ask(cursor: Any) -> Any:
            nonlocal second_rounds
            args = {**ARGS, "groups": rng.random() < 0.3, "sort": sort, "limit": limit,
                    "cursor": cursor}
            query = (*cluster_fleet._page_key(args), None)
            if limit > 1 and rng.random() < 0.8:
                requester._takes[query] = {name: rng.randrange(1, limit) for name in "abc"
                                           if rng.random() < 0.8}
            else:
                requester._takes.pop(query, None)
            before = requester.second_rounds
            answer = asyncio.run(requester.list(**args, node=None, timeout=None))
            second_rounds += requester.second_rounds - before
            return answer

        if rng.random() < 0.65:  # values fixed: walk to the end
            cursor, seen = None, []
            for _ in range(60):
                state["silent1"] = {name for name in "bc" if rng.random() < 0.1}
                state["silent2"] = {name for name in "bc" if rng.random() < 0.3}
                state["failing2"] = {name for name in "bc" if rng.random() < 0.1}
                for _ in range(2 if rng.random() < 0.3 else 1):  # held pages, now and then
                    answer = ask(cursor)
                ids = [row["id"] for row in answer.result["connections"]]
                cut_for = [name for name, why in answer.missing.items()
                           if "part of its page" in why]
                answering = ["a", *(name for name in "bc" if name not in answer.missing
                                    or name in cut_for)]
                want = order(answering, decode_cursor(cursor, sort))[:limit]
                assert ids == want[:len(ids)], (seed, ids, want, answer.missing)
                assert len(cut_for) == (1 if len(ids) < len(want) else 0), (seed, answer.missing)
                short_pages += len(ids) < len(want)
                next_cursor = answer.result["next_cursor"]
                if ids and next_cursor is not None:
                    assert decode_cursor(next_cursor, sort)[1] == ids[-1]
                if state["silent1"]:
                    cursor, seen = None, []  # a node's rows left out: start again
                    continue
                assert next_cursor is not None or len(order("abc", decode_cursor(
                    cursor, sort))) == len(ids), seed  # never ends early
                seen += ids
                cursor = next_cursor
                if cursor is None:
                    assert seen == order("abc", None), seed
                    break
        else:  # rows move between the rounds (or after the requester's own page)
            state["silent2"] = {name for name in "bc" if rng.random() < 0.2}
            state["after_own"] = rng.random() < 0.5

            def move() -> None:
                for name in "abc":
                    registry = fleets[name][1].registry
                    listed = registry.query(limit=1000).records
                    for record in listed:
                        if rng.random() < 0.3:
                            record.msgs_in += rng.randrange(20)
                    if listed and rng.random() < 0.3:
                        registry.remove(rng.choice(listed).id)
                    registry.sample_all(200.0 + rng.random())

            state["between"] = move
            before = {record.id: key(record) for record in records()}
            answer = ask(None)
            after = {record.id: key(record) for record in records()}
            ids = [row["id"] for row in answer.result["connections"]]
            assert len(set(ids)) == len(ids), seed
            if ids:
                last = [value for value in (before.get(ids[-1]), after.get(ids[-1])) if value]
                for id, value in before.items():
                    if after.get(id) == value and all(
                            value > other if descending else value < other for other in last):
                        assert id in ids, (seed, id)
    assert second_rounds > 200 and short_pages > 20  # the cases were there

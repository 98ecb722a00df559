"""The pure registry, with plain values: indexes, selectors, counts, orders, cursors, pages."""

from __future__ import annotations

import base64
import random

import pytest

from wsconsole.server.errors import SelectorError, UnknownConnection
from wsconsole.server.indexes import SEGMENT_SIZE
from wsconsole.server.redaction import redact_headers
from wsconsole.server.registry import (
    SORT_KEYS,
    SORTED_BY,
    SUMMARY_FIELDS,
    ConnectionRecord,
    ConnectionRegistry,
    Page,
    Selector,
    decode_cursor,
    encode_cursor,
    merge_groups,
    merge_pages,
)


def make(registry: ConnectionRegistry, user: str, path: str, *topics: str, **kw) -> ConnectionRecord:
    record = ConnectionRecord(registry.new_id(), node="n1", user=user, path=path, **kw)
    registry.add(record)
    for topic in topics:
        registry.subscribe(record.id, topic)
    return record


@pytest.fixture
def registry() -> ConnectionRegistry:
    reg = ConnectionRegistry()
    make(reg, "ann", "/chat", "lobby", connected_at=1.0)
    make(reg, "ann", "/feed", connected_at=2.0)
    make(reg, "bob", "/chat", "lobby", "dev", connected_at=3.0)
    make(reg, "cid", "/chat", connected_at=4.0)
    return reg


def users(records) -> list[str]:
    return sorted(r.user for r in records)


def test_groups_are_counted_by_user_path_and_topic(registry):
    """Group counts follow adds and subscriptions without a scan."""
    assert registry.user_counts() == {"ann": 2, "bob": 1, "cid": 1}
    assert registry.path_counts() == {"/chat": 3, "/feed": 1}
    assert registry.topic_counts() == {"lobby": 2, "dev": 1}
    assert registry.count(user="ann") == 2 and registry.count(topic="nope") == 0
    assert len(registry) == 4


def test_a_summary_row_is_the_summary_without_its_names(registry):
    """A cluster node ships its rows as columns: each row holds the summary's
    values in SUMMARY_FIELDS order, every field of the summary, nothing else."""
    for record in registry:
        record.msgs_in, record.latency = 7, 0.25
        summary = record.summary()
        assert tuple(summary) == SUMMARY_FIELDS
        assert record.summary_row() == list(summary.values())


def test_selectors_combine_kinds_with_and(registry):
    """A selector of several kinds matches only connections in all of them."""
    assert users(registry.select(Selector(everyone=True))) == ["ann", "ann", "bob", "cid"]
    assert users(registry.select(Selector(user="ann"))) == ["ann", "ann"]
    assert users(registry.select(Selector(path="/chat"))) == ["ann", "bob", "cid"]
    assert users(registry.select(Selector(topic="lobby"))) == ["ann", "bob"]
    assert users(registry.select(Selector(user="ann", path="/chat", topic="lobby"))) == ["ann"]
    assert registry.select(Selector(user="bob", topic="nope")) == []


def test_selecting_by_id_ignores_ids_that_are_gone(registry):
    """Ids of closed connections match nothing instead of failing."""
    bob = registry.select(Selector(user="bob"))[0]
    assert registry.select(Selector(ids=(bob.id, "deadbeef00"))) == [bob]
    registry.remove(bob.id)
    assert registry.select(Selector(ids=(bob.id,))) == []


def test_removing_a_record_leaves_every_index(registry):
    """A removed connection leaves its user, path and topic buckets; empty buckets go."""
    bob = registry.select(Selector(user="bob"))[0]
    assert registry.remove(bob.id) is bob
    assert registry.remove(bob.id) is None
    assert "bob" not in registry.user_counts()
    assert registry.topic_counts() == {"lobby": 1}
    assert registry.path_counts() == {"/chat": 2, "/feed": 1}


def test_unsubscribe_and_resubscribe(registry):
    """Topics can be left and joined; a double join is reported as no change."""
    ann = registry.select(Selector(user="ann", path="/chat"))[0]
    assert registry.subscribe(ann.id, "lobby") is False
    assert registry.unsubscribe(ann.id, "lobby") is True
    assert registry.unsubscribe(ann.id, "lobby") is False
    assert registry.topic_counts() == {"lobby": 1, "dev": 1}
    with pytest.raises(UnknownConnection):
        registry.subscribe("deadbeef00", "lobby")


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "empty selector"),
        ({"color": "red"}, "unknown selector field 'color'"),
        ({"user": 3}, "'user' must be a string"),
        ({"ids": "abc"}, "'ids' must be a list"),
        ({"everyone": "yes"}, "'everyone' must be a boolean"),
        ([], "must be an object"),
    ],
)
def test_bad_selectors_are_refused_with_a_clear_message(data, message):
    """Malformed selectors raise SelectorError naming the problem."""
    with pytest.raises(SelectorError, match=message):
        Selector.from_dict(data)


def test_selector_round_trips_through_its_wire_form():
    """to_dict and from_dict are inverse (the wire's selectors are patterns; one
    made in code names exact users, escaped on the wire)."""
    selector = Selector(user="ann", topic="lobby", ids=("a", "b"), patterns=True)
    assert Selector.from_dict(selector.to_dict()) == selector
    assert selector.describe() == "user=ann topic=lobby ids=a,b"
    exact = Selector(user="a*b", topic="lobby")
    assert exact.to_dict() == {"user": "a\\*b", "topic": "lobby"}
    assert Selector.from_dict(exact.to_dict()) == Selector(user="a\\*b", topic="lobby",
                                                           patterns=True)


def test_query_pages_sorts_and_filters():
    """Listing returns pages that cover every match exactly once, in sort order."""
    reg = ConnectionRegistry()
    for i in range(250):
        record = make(reg, f"u{i % 7}", "/p", connected_at=float(i))
        record.msgs_in = (i * 37) % 101
    reg.sample_all(now=300.0)
    seen = []
    cursor = None
    while True:
        page = reg.query(sort="-msgs_in", limit=40, cursor=cursor)
        seen.extend(page.records)
        assert page.total == 250
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 250 and len({r.id for r in seen}) == 250
    assert [r.msgs_in for r in seen] == sorted((r.msgs_in for r in seen), reverse=True)
    page = reg.query(user="u3", limit=1000)
    assert page.total == len(page.records) == len([i for i in range(250) if i % 7 == 3])
    assert [r.connected_at for r in page.records] == sorted(r.connected_at for r in page.records)


def test_query_refuses_unknown_sort_keys_and_cursors():
    """Bad sort keys, limits and cursors are SelectorErrors, not crashes."""
    reg = ConnectionRegistry()
    with pytest.raises(SelectorError, match="unknown sort key"):
        reg.query(sort="password")
    with pytest.raises(SelectorError, match="limit"):
        reg.query(limit=0)
    with pytest.raises(SelectorError, match="cursor"):
        reg.query(cursor="abc")
    # str.isdigit() accepts these, int() does not (or not past 4300 digits).
    for cursor in ("²", "٣", "9" * 5000):
        with pytest.raises(SelectorError, match="cursor"):
            reg.query(cursor=cursor)


def test_id_prefix_filter():
    """An id prefix narrows a listing to the ids that start with it."""
    reg = ConnectionRegistry()
    records = [make(reg, "u", "/p") for _ in range(50)]
    prefix = records[0].id[:3]
    page = reg.query(id_prefix=prefix)
    assert {r.id for r in page.records} == {r.id for r in records if r.id.startswith(prefix)}


def test_secret_headers_are_redacted_in_detail():
    """Authorization, Cookie, Set-Cookie and Proxy-Authorization never leave unredacted."""
    headers = [("Host", "x"), ("authorization", "Bearer s3cret"), ("Cookie", "sid=1"),
               ("Proxy-Authorization", "Basic x"), ("Set-Cookie", "a=b")]
    assert redact_headers(headers) == [
        ["Host", "x"], ["authorization", "[redacted]"], ["Cookie", "[redacted]"],
        ["Proxy-Authorization", "[redacted]"], ["Set-Cookie", "[redacted]"],
    ]
    record = ConnectionRecord("abc", node="n", user="u", path="/", request_headers=headers)
    assert "s3cret" not in repr(record.detail())


@pytest.mark.parametrize(
    "query, shown",
    [
        ("user=ann&room=lobby", "user=ann&room=lobby"),
        ("user=ann&access_token=abc.def", "user=ann&access_token=[redacted]"),
        ("TOKEN=x&Password=y&api_key=z&sig=1", "TOKEN=[redacted]&Password=[redacted]&api_key=[redacted]&sig=[redacted]"),
        ("auth=", "auth="),
        ("", ""),
    ],
)
def test_secret_looking_query_values_are_redacted(query, shown):
    """Tokens passed in the query string (browsers cannot set headers) are redacted."""
    from wsconsole.server.redaction import redact_query

    assert redact_query(query) == shown


# Orders, keyset cursors and churn


def build(count: int, seed: int = 1) -> tuple[ConnectionRegistry, random.Random]:
    """A registry of ``count`` records with varied values in every sort field."""
    rng = random.Random(seed)
    reg = ConnectionRegistry()
    for i in range(count):
        add_random(reg, rng, i)
    reg.sample_all(now=10_000.0)
    return reg, rng


def add_random(reg: ConnectionRegistry, rng: random.Random, i: int) -> ConnectionRecord:
    record = ConnectionRecord(
        reg.new_id(), node="n1", user=f"u{rng.randrange(40)}",
        path=rng.choice(["/chat", "/chat", "/chat", "/feed", "/admin"]),
        remote=f"10.0.{rng.randrange(4)}.{rng.randrange(256)}:{rng.randrange(1, 65536)}",
        connected_at=float(i // 3),  # ties, broken by id
    )
    # Counters with many ties (idle connections stay at 0), as in a real fleet.
    record.msgs_in = rng.choice([0, 0, rng.randrange(5), rng.randrange(10**6)])
    record.bytes_in = record.msgs_in * rng.randrange(1, 200)
    record.msgs_out = rng.randrange(50)
    record.bytes_out = rng.randrange(10**9)
    reg.add(record)
    if rng.random() < 0.3:
        reg.subscribe(record.id, rng.choice(["lobby", "dev", "ops"]))
    return record


def probe_from(values: dict[str, tuple[int, float]]):
    """A probe that reads (buffered, latency) from a plain dict, as the hub reads transports."""
    return lambda record: values.get(record.id, (0, 0.0))


def order_of(records, sort: str) -> list[tuple]:
    """The reference order: sort values as sampled, then id; '-' reverses both."""
    attribute = SORTED_BY[sort.lstrip("-")]
    return sorted(((getattr(r, attribute), r.id) for r in records),
                  reverse=sort.startswith("-"))


def page_through(reg: ConnectionRegistry, sort: str, limit: int, between=None, **filters):
    """Every row of a listing, page by page, calling ``between(page_number)`` between pages."""
    rows, cursor, number = [], None, 0
    while True:
        page = reg.query(sort=sort, limit=limit, cursor=cursor, **filters)
        assert len(page.records) <= limit and len(page.keys) == len(page.records)
        rows.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return rows
        number += 1
        if between is not None:
            between(number)


ALL_SORTS = [key for key in SORT_KEYS] + [f"-{key}" for key in SORT_KEYS]


@pytest.fixture(scope="module")
def fleet() -> ConnectionRegistry:
    """2,300 sampled records (several segments and index blocks), read-only."""
    reg, rng = build(2300)
    values = {r.id: (rng.choice([0, 0, rng.randrange(1 << 20)]), rng.choice([0.0, rng.random()]))
              for r in reg.records()}
    reg.sample_all(now=20_000.0, probe=probe_from(values))
    return reg


@pytest.mark.parametrize("sort", ALL_SORTS)
def test_every_order_pages_every_record_once_in_value_then_id_order(fleet, sort):
    """Pages of any sort, ascending or descending, cover every record once, in
    (value, id) order, across several segments and index blocks."""
    reg = fleet
    rows = page_through(reg, sort, limit=97)
    attribute = SORTED_BY[sort.lstrip("-")]
    assert [(getattr(r, attribute), r.id) for r in rows] == order_of(reg.records(), sort)


def test_first_page_is_the_head_of_the_order():
    """The first page of a listing is its first `limit` records; total counts them all."""
    reg, _ = build(1200)
    page = reg.query(sort="-bytes_out", limit=10)
    assert page.total == 1200
    assert [(r.bytes_out_seen, r.id) for r in page.records] == order_of(reg.records(), "-bytes_out")[:10]
    assert reg.query(sort="connected_at", limit=1000).next_cursor is not None
    assert reg.query(sort="connected_at", limit=1000, user="nobody").next_cursor is None


@pytest.mark.parametrize("sort", ["connected_at", "-connected_at", "user", "-id", "msgs_in", "-last_activity"])
def test_a_cursor_stays_valid_while_records_come_and_go(sort):
    """Between two pages records are added and removed (some already shown, some
    not yet): a record open throughout is shown exactly once, nothing twice, in order."""
    reg, rng = build(1500, seed=7)
    initial = {r.id for r in reg.records()}
    removed: set[str] = set()
    counter = iter(range(1500, 10**6))

    def churn(page_number: int) -> None:
        for record in rng.sample(list(reg.records()), 25):
            reg.remove(record.id)
            removed.add(record.id)
        for _ in range(30):
            add_random(reg, rng, next(counter))
        # Live values of records that were there all along do not move here:
        # only the newcomers get sampled values (their counters start at zero).

    rows = page_through(reg, sort, limit=60, between=churn)
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids)), "a row was shown twice"
    assert (initial - removed) <= set(ids), "a row open throughout was skipped"
    attribute = SORTED_BY[sort.lstrip("-")]
    keys = [(getattr(r, attribute), r.id) for r in rows]
    assert keys == sorted(keys, reverse=sort.startswith("-"))


def test_live_orders_follow_the_sample_not_the_hot_path():
    """Counters moved by traffic reorder a listing at the next sample, not before:
    the order a cursor points into holds still between samples."""
    reg = ConnectionRegistry()
    quiet, busy = make(reg, "q", "/"), make(reg, "b", "/")
    busy.msgs_in = 5
    assert [r.user for r in reg.query(sort="-msgs_in").records] == sorted(
        ["q", "b"], key=lambda u: {"q": quiet.id, "b": busy.id}[u], reverse=True)
    reg.sample_step(now=50.0)
    page = reg.query(sort="-msgs_in")
    assert [r.user for r in page.records] == ["b", "q"]
    assert page.keys[0] == (5, busy.id)
    assert busy.last_activity == 50.0 and quiet.last_activity == 0.0
    assert [r.user for r in reg.query(sort="-last_activity").records] == ["b", "q"]


def test_sampling_visits_one_segment_per_step_and_sums_what_it_saw():
    """sample_step visits the segments in turn (segment_count steps visit everyone);
    sampled_totals sums the counters as sampled; an unregistered record leaves the sums."""
    reg = ConnectionRegistry()
    records = [make(reg, f"u{i}", "/") for i in range(3 * SEGMENT_SIZE)]
    assert reg.segment_count == 3
    for record in records:
        record.msgs_in, record.bytes_in, record.msgs_out, record.bytes_out = 1, 10, 2, 20
    visited = [reg.sample_step(now=1.0) for _ in range(2)]
    assert visited == [SEGMENT_SIZE, SEGMENT_SIZE]
    assert reg.sampled_totals() == (2 * SEGMENT_SIZE, 20 * SEGMENT_SIZE, 4 * SEGMENT_SIZE, 40 * SEGMENT_SIZE)
    reg.sample_step(now=1.0)
    assert reg.sampled_totals() == (3 * SEGMENT_SIZE, 30 * SEGMENT_SIZE, 6 * SEGMENT_SIZE, 60 * SEGMENT_SIZE)
    reg.remove(records[0].id)
    assert reg.sampled_totals()[0] == 3 * SEGMENT_SIZE - 1
    assert sum(reg.sample_step(now=2.0) for _ in range(reg.segment_count)) == len(reg)


def test_probe_fills_buffer_and_latency_and_their_orders():
    """The edge's probe supplies (buffered, latency); sorting by them uses the sample."""
    reg = ConnectionRegistry()
    a, b, c = (make(reg, u, "/") for u in "abc")
    values = {a.id: (10, 0.3), b.id: (3000, 0.1), c.id: (0, 0.2)}
    reg.sample_all(now=5.0, probe=probe_from(values))
    assert [r.user for r in reg.query(sort="-buffered").records] == ["b", "a", "c"]
    assert [r.user for r in reg.query(sort="latency").records] == ["b", "c", "a"]
    # One record sampled on its own (a detail view) keeps its place in order.
    values[c.id] = (99999, 0.05)
    reg.sample_record(c, now=6.0, probe=probe_from(values))
    assert (c.buffered, c.latency) == (99999, 0.05)
    assert [r.user for r in reg.query(sort="-buffered").records] == ["c", "b", "a"]
    assert [r.user for r in reg.query(sort="latency").records] == ["c", "b", "a"]
    reg.remove(c.id)
    assert [r.user for r in reg.query(sort="latency").records] == ["b", "a"]


def test_segments_shrink_with_the_fleet():
    """After most connections close, their segments are merged away: a live order
    bisects about n / SEGMENT_SIZE segments, not as many as at the peak."""
    reg = ConnectionRegistry()
    records = [make(reg, "u", "/") for _ in range(10 * SEGMENT_SIZE)]
    assert reg.segment_count == 10
    rng = random.Random(3)
    rng.shuffle(records)
    for record in records[:-SEGMENT_SIZE]:
        reg.remove(record.id)
    assert len(reg) == SEGMENT_SIZE
    assert reg.segment_count <= 3
    assert len(page_through(reg, "-msgs_in", limit=100)) == SEGMENT_SIZE


# Filters


def reference(reg: ConnectionRegistry, sort: str, user=None, path=None, topic=None, id_prefix=None):
    matches = [r for r in reg.records()
               if (user is None or r.user == user) and (path is None or r.path == path)
               and (topic is None or topic in r.topics)
               and (not id_prefix or r.id.startswith(id_prefix))]
    return order_of(matches, sort)


FILTERS = [
    {"user": "u3"},                                   # a small group: sorted
    {"path": "/chat"},                                # most of the fleet: the order is walked
    {"path": "/admin"},
    {"topic": "lobby"},
    {"user": "u3", "path": "/chat"},                  # several filters
    {"path": "/chat", "topic": "dev"},
    {"id_prefix": "a"},
    {"id_prefix": "a", "path": "/feed"},
    {"user": "nobody"},
    {"topic": "lobby", "user": "u1", "path": "/feed", "id_prefix": "0"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
@pytest.mark.parametrize("sort", ["connected_at", "-msgs_in", "user", "-bytes_out", "last_activity"])
def test_filtered_listings_match_a_plain_filter_and_sort(fleet, filters, sort):
    """Every filter (one group, several, an id prefix) with every kind of order gives
    the rows and total a plain filter-then-sort gives, page by page."""
    reg = fleet
    expected = reference(reg, sort, **filters)
    attribute = SORTED_BY[sort.lstrip("-")]
    rows = page_through(reg, sort, limit=50, **filters)
    assert [(getattr(r, attribute), r.id) for r in rows] == expected
    assert reg.query(sort=sort, limit=5, **filters).total == len(expected)


def test_a_filter_correlated_with_the_order_is_still_exact():
    """A large group that sits at the far end of the order (the walk gives up and
    the group is sorted instead) still pages correctly."""
    reg = ConnectionRegistry()
    for i in range(4000):
        # The newest quarter is on /late: ascending connected_at reaches it last.
        make(reg, "u", "/late" if i >= 3000 else "/early", connected_at=float(i))
    page = reg.query(path="/late", sort="connected_at", limit=10)
    assert [r.connected_at for r in page.records] == [float(i) for i in range(3000, 3010)]
    assert page.total == 1000
    rows = page_through(reg, "connected_at", limit=100, path="/late")
    assert [r.connected_at for r in rows] == [float(i) for i in range(3000, 4000)]
    rows = page_through(reg, "-connected_at", limit=100, path="/early")
    assert [r.connected_at for r in rows] == [float(i) for i in range(2999, -1, -1)]


# Group counts


def test_largest_groups_are_counted_incrementally_and_cut_at_the_limit():
    """groups(limit) gives each kind's largest groups by count then name, says
    when it cut, and follows adds, removals, subscriptions at once."""
    reg = ConnectionRegistry()
    records = {}
    for user, count in [("ann", 5), ("bob", 3), ("cid", 3), ("dan", 1), ("eve", 1), ("fay", 1)]:
        records[user] = [make(reg, user, "/p") for _ in range(count)]
    groups, truncated = reg.groups(3)
    assert groups["users"] == {"ann": 5, "bob": 3, "cid": 3} and truncated
    assert list(groups["users"]) == ["ann", "bob", "cid"]
    assert groups["paths"] == {"/p": 14} and groups["topics"] == {}
    groups, truncated = reg.groups(200)
    assert groups["users"] == {"ann": 5, "bob": 3, "cid": 3, "dan": 1, "eve": 1, "fay": 1}
    assert not truncated
    for record in records["ann"][:3]:
        reg.remove(record.id)
    reg.subscribe(records["dan"][0].id, "lobby")
    groups, _ = reg.groups(2)
    assert groups["users"] == {"bob": 3, "cid": 3}
    assert groups["topics"] == {"lobby": 1}
    assert reg.groups(4)[0]["users"] == {"bob": 3, "cid": 3, "ann": 2, "dan": 1}
    reg.unsubscribe(records["dan"][0].id, "lobby")
    assert reg.groups(4)[0]["topics"] == {}


def test_largest_groups_among_many_equal_ones():
    """With 5,000 users of one connection each, the cut keeps `limit` of them, sorted by name."""
    reg = ConnectionRegistry()
    for i in range(5000):
        make(reg, f"user{i:05}", "/p")
    make(reg, "user04999", "/p")
    groups, truncated = reg.groups(200)
    users = groups["users"]
    assert truncated and len(users) == 200
    assert next(iter(users.items())) == ("user04999", 2)
    rest = list(users)[1:]
    assert rest == sorted(rest) and all(users[name] == 1 for name in rest)


def test_version_moves_with_every_membership_change(registry):
    """version changes on add, remove, subscribe and unsubscribe, and only then."""
    before = registry.version
    record = make(registry, "zed", "/z")
    registry.subscribe(record.id, "t")
    registry.subscribe(record.id, "t")  # no change
    registry.unsubscribe(record.id, "t")
    registry.sample_all(now=1.0)
    registry.query(sort="-msgs_in")
    registry.remove(record.id)
    assert registry.version == before + 4


# Cursors


@pytest.mark.parametrize("cursor", [
    "100",                                   # an offset from an older server
    encode_cursor("user", ("ann", "abc")),   # another listing's order
    base64.urlsafe_b64encode(b'["connected_at","x","abc"]').decode(),   # wrong value type
    base64.urlsafe_b64encode(b'["connected_at",true,"abc"]').decode(),
    base64.urlsafe_b64encode(b'["connected_at",NaN,"abc"]').decode(),
    base64.urlsafe_b64encode(b'["connected_at",1e999,"abc"]').decode(),
    base64.urlsafe_b64encode(b'["connected_at",1.0]').decode(),
    base64.urlsafe_b64encode(b'{"a": 1}').decode(),
    base64.urlsafe_b64encode(b"[" * 100_000).decode()[:90_000],
    "not base64!",
    "Y" * 200_000,
    "é",
])
def test_cursors_not_made_for_this_listing_are_refused(cursor):
    """A cursor is opaque: anything the server did not issue for this sort is a SelectorError."""
    reg, _ = build(10)
    with pytest.raises(SelectorError, match="cursor"):
        reg.query(sort="connected_at", cursor=cursor)


def test_cursor_round_trips_every_kind_of_value():
    """encode_cursor and decode_cursor are inverse for strings, ints and floats."""
    for sort, key in [("user", ("ünï/\"cödé\"", "ab")), ("-msgs_in", (2**70, "cd")),
                      ("connected_at", (1712345678.123456, "ef")), ("latency", (0.0, "01"))]:
        cursor = encode_cursor(sort, key)
        assert cursor.isascii() and "=" not in cursor
        assert decode_cursor(cursor, sort) == key
    assert decode_cursor(None, "id") is None and decode_cursor("", "id") is None


# Cluster mode: merging the pages of several nodes


def split_over_nodes(reg: ConnectionRegistry, nodes: int) -> list[ConnectionRegistry]:
    """The same records spread over several registries, as over the nodes of a cluster."""
    parts = [ConnectionRegistry() for _ in range(nodes)]
    for i, record in enumerate(sorted(reg.records(), key=lambda r: r.id)):
        copy = ConnectionRecord(record.id, node=f"n{i % nodes}", user=record.user, path=record.path,
                                remote=record.remote, connected_at=record.connected_at)
        copy.msgs_in, copy.bytes_out = record.msgs_in, record.bytes_out
        parts[i % nodes].add(copy)
    return parts


@pytest.mark.parametrize("sort", ["connected_at", "-msgs_in", "-user", "bytes_out"])
def test_merged_pages_of_several_nodes_page_like_one_registry(sort):
    """Each node answers one page after the same cursor; merging them pages the
    cluster exactly as one registry holding every record would."""
    whole, _ = build(1000, seed=5)
    nodes = split_over_nodes(whole, 3)
    rows, cursor = [], None
    while True:
        answers = [node.query(sort=sort, limit=70, cursor=cursor, path="/chat") for node in nodes]
        page = merge_pages(answers, sort=sort, limit=70)
        assert page.total == whole.query(path="/chat").total
        rows.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    attribute = SORTED_BY[sort.lstrip("-")]
    assert [(getattr(r, attribute), r.id) for r in rows] == reference(whole, sort, path="/chat")


def test_merge_takes_rows_from_the_wire():
    """Rows and keys as they arrive from other nodes (summaries, keys as JSON lists) merge too."""
    a = Page(records=[{"id": "a1"}, {"id": "a3"}], total=5, next_cursor="more", keys=[[1, "a1"], [3, "a3"]])
    b = Page(records=[{"id": "b2"}], total=1, next_cursor=None, keys=[[2, "b2"]])
    page = merge_pages([a, b], sort="msgs_in", limit=2)
    assert [r["id"] for r in page.records] == ["a1", "b2"] and page.total == 6
    assert decode_cursor(page.next_cursor, "msgs_in") == (2, "b2")
    last = merge_pages([Page(records=[], total=0, next_cursor=None), b], sort="msgs_in", limit=2)
    assert [r["id"] for r in last.records] == ["b2"] and last.next_cursor is None
    with pytest.raises(ValueError):
        merge_pages([Page(records=[{"id": "x"}], total=1, next_cursor=None)], sort="id", limit=5)


def test_group_counts_of_several_nodes_are_summed():
    """Nodes' largest groups add up; the merged list is cut to the limit and says so."""
    merged, truncated = merge_groups([
        ({"users": {"ann": 3, "bob": 1}, "paths": {"/": 4}}, False),
        ({"users": {"bob": 4, "cid": 1}, "paths": {"/": 5}}, False),
    ], limit=2)
    assert merged == {"users": {"bob": 5, "ann": 3}, "paths": {"/": 9}} and truncated
    assert merge_groups([({"users": {"a": 1}}, True)], limit=5) == ({"users": {"a": 1}}, True)


def test_first_page_of_a_group_by_connection_time_stays_exact_when_clocks_step_back():
    """A user's or path's first page by connection time is its first records in
    arrival order while arrivals come in time order, and still the exact order
    after a record arrives with an earlier time (a clock stepped back)."""
    reg = ConnectionRegistry()
    rng = random.Random(8)
    for i in range(2000):
        make(reg, f"u{i % 3}", rng.choice(["/a", "/a", "/b"]), "t" if i % 2 else "s",
             connected_at=1000.0 + i)
    for filters in ({"path": "/a"}, {"user": "u1"}, {"topic": "t"}):
        for sort in ("connected_at", "-connected_at"):
            page = reg.query(sort=sort, limit=30, **filters)
            assert [(r.connected_at, r.id) for r in page.records] == reference(reg, sort, **filters)[:30]
    for i in range(5):
        make(reg, "u1", "/a", connected_at=10.0 + i)  # from before everyone else
    for sort in ("connected_at", "-connected_at"):
        for filters in ({"path": "/a"}, {"user": "u1"}):
            page = reg.query(sort=sort, limit=30, **filters)
            assert [(r.connected_at, r.id) for r in page.records] == reference(reg, sort, **filters)[:30]
    assert reg.query(path="/a", limit=5).records[0].connected_at == 10.0


def test_a_topic_at_the_far_end_of_a_merged_order_is_still_exact():
    """A topic whose members all sort last by id (the walk along the merged
    segments gives up and the topic is sorted instead) pages exactly."""
    reg = ConnectionRegistry()
    for i in range(4000):
        record = ConnectionRecord(f"{i:05}", node="n1", user="u", path="/p")
        reg.add(record)
        reg.subscribe(record.id, "late" if i >= 3000 else "early")
    page = reg.query(topic="late", sort="id", limit=10)
    assert [r.id for r in page.records] == [f"{i:05}" for i in range(3000, 3010)]
    assert [r.id for r in page_through(reg, "id", limit=100, topic="late")] == [
        f"{i:05}" for i in range(3000, 4000)]
    assert [r.id for r in page_through(reg, "-id", limit=100, topic="early")] == [
        f"{i:05}" for i in range(2999, -1, -1)]

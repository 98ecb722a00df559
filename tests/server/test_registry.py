"""The pure registry, with plain values: indexes, selectors, counts, pages."""

from __future__ import annotations

import pytest

from wsconsole.server.errors import SelectorError, UnknownConnection
from wsconsole.server.redaction import redact_headers
from wsconsole.server.registry import ConnectionRecord, ConnectionRegistry, Selector


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
    """to_dict and from_dict are inverse."""
    selector = Selector(user="ann", topic="lobby", ids=("a", "b"))
    assert Selector.from_dict(selector.to_dict()) == selector
    assert selector.describe() == "user=ann topic=lobby ids=a,b"


def test_query_pages_sorts_and_filters():
    """Listing returns pages that cover every match exactly once, in sort order."""
    reg = ConnectionRegistry()
    for i in range(250):
        record = make(reg, f"u{i % 7}", "/p", connected_at=float(i))
        record.msgs_in = (i * 37) % 101
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

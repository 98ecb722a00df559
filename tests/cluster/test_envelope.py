"""The message format between nodes, with plain values: what is accepted, and
why everything else is refused."""

from __future__ import annotations

import pytest

from wsconsole.server.cluster.envelope import (
    DropReason,
    Message,
    MessageKind,
    Refused,
    ReplayGuard,
    seal,
    unseal,
)

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def message(**fields) -> Message:
    values = dict(kind=MessageKind.REQUEST, cluster="prod", src="web-1", op="list",
                  id="r1", role="operator", timeout=2.0, body={"args": {"limit": 5}}, ts=NOW)
    values.update(fields)
    return Message(**values)


def check(data: bytes, *, now: float = NOW, guard: ReplayGuard | None = None) -> Message:
    return unseal(data, SECRET, cluster="prod", now=now, max_skew=30, max_bytes=1 << 16,
                  guard=guard)


def refusal(data: bytes, **kwargs) -> DropReason:
    with pytest.raises(Refused) as info:
        check(data, **kwargs)
    return info.value.reason


def test_a_sealed_message_comes_back_whole():
    """What one node seals, another unseals: every field, the body as JSON."""
    got = check(seal(message(), SECRET))
    assert (got.kind, got.cluster, got.src, got.op, got.role, got.timeout) == (
        "request", "prod", "web-1", "list", "operator", 2.0)
    assert got.body == {"args": {"limit": 5}} and got.nonce


def test_any_change_to_a_message_breaks_its_signature():
    """The MAC covers every byte: a role raised, a byte flipped, another secret."""
    data = seal(message(role="read_only"), SECRET)
    assert refusal(data.replace(b'"read_only"', b'"operator"')) == DropReason.BAD_SIGNATURE
    assert refusal(seal(message(), b"z" * 32)) == DropReason.BAD_SIGNATURE


@pytest.mark.parametrize("data, reason", [
    (b"hello", DropReason.FOREIGN),
    (b'{"kind": "request"}', DropReason.FOREIGN),
    (b"wsc1." + b"0" * 64, DropReason.FOREIGN),
    (b"wsc1." + b"x" * (1 << 17), DropReason.OVERSIZED),
])
def test_what_is_not_ours_is_refused_before_it_is_parsed(data, reason):
    """Foreign payloads and oversized ones are refused unread."""
    assert refusal(data) == reason


def test_signed_but_malformed_or_foreign_messages_are_refused():
    """A valid signature does not make a message valid: shape, version, cluster."""
    import hashlib
    import hmac

    def signed_json(text: bytes) -> bytes:
        return b"wsc1." + hmac.new(SECRET, text, hashlib.sha256).hexdigest().encode() + b"." + text

    assert refusal(signed_json(b"[1]")) == DropReason.MALFORMED
    assert refusal(signed_json(b"{nope")) == DropReason.MALFORMED
    assert refusal(signed_json(b'{"v": 2, "kind": "request"}')) == DropReason.MALFORMED
    assert refusal(seal(message(cluster="dev"), SECRET)) == DropReason.OTHER_CLUSTER


def test_the_replay_window_tolerates_skew_and_refuses_what_is_outside_it():
    """A message up to max_skew seconds early or late passes; beyond, it is stale."""
    assert check(seal(message(ts=NOW - 29), SECRET)).ts == NOW - 29
    assert check(seal(message(ts=NOW + 29), SECRET)).ts == NOW + 29
    assert refusal(seal(message(ts=NOW - 31), SECRET)) == DropReason.STALE
    assert refusal(seal(message(ts=NOW + 31), SECRET)) == DropReason.STALE


def test_a_message_is_acted_on_once():
    """The same nonce twice within the window is a replay; the guard forgets
    nonces once they are out of the window, and never holds more than its capacity."""
    guard = ReplayGuard(window=60, capacity=3)
    data = seal(message(nonce="n1"), SECRET)
    check(data, guard=guard)
    assert refusal(data, guard=guard) == DropReason.REPLAYED
    for n in range(10):
        check(seal(message(nonce=f"m{n}"), SECRET), guard=guard)
    assert len(guard) <= 3
    later = ReplayGuard(window=60)
    assert later.first_time("a", NOW, NOW) and not later.first_time("a", NOW, NOW + 10)
    assert later.first_time("b", NOW + 100, NOW + 100) and len(later) == 1


@pytest.fixture(params=["orjson", "json"])
def reading_codec(request):
    """Unseal with each codec (nodes with and without orjson), then put the
    codec back (a virtualenv made before orjson was a dependency has none)."""
    from wsconsole.server.cluster import envelope

    pytest.importorskip("orjson")
    before = envelope.codec()
    yield request.param
    envelope.use_codec(before)


def test_nodes_with_and_without_orjson_understand_each_other(reading_codec):
    """What one codec writes the other reads, byte for byte the same JSON
    values; both refuse NaN and Infinity, and what orjson cannot write (an
    integer past 64 bits) is written by the standard library."""
    import hashlib
    import hmac

    from wsconsole.server.cluster import envelope

    body = {"args": {"limit": 5, "text": "h\u00e9 \u2603", "big": 2 ** 70, "f": 0.1},
            "per_node": {"a": {"count": 2}}, "codes": {1006: 3}}
    for writing in ("orjson", "json"):
        envelope.use_codec(writing)
        data = seal(message(body=body), SECRET)
        envelope.use_codec(reading_codec)
        got = check(data).body
        expected_big = 2 ** 70 if reading_codec == "json" else float(2 ** 70)
        assert got == {**body, "args": {**body["args"], "big": expected_big},
                       "codes": {"1006": 3}}
    text = b'{"v": 1, "kind": "request", "f": NaN}'
    for constant in (text, text.replace(b"NaN", b"Infinity")):
        signed = (b"wsc1." + hmac.new(SECRET, constant, hashlib.sha256).hexdigest().encode()
                  + b"." + constant)
        assert refusal(signed) == DropReason.MALFORMED

"""The control plane's wire format, with plain values."""

from __future__ import annotations

import base64
import json

import pytest

from wsconsole.server import errors, wire
from wsconsole.server.errors import ProtocolViolation
from wsconsole.server.protocol import ShutdownMode


def parse_error(frame) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        wire.parse_request(frame)
    return info.value


def test_valid_request_gets_defaults_filled_in():
    """A minimal list request comes back with every default argument."""
    request = wire.parse_request('{"id": 1, "op": "list"}')
    assert request.op == "list" and request.id == 1
    assert request.args["limit"] == 100 and request.args["sort"] == "connected_at"


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (b'{"id": 1, "op": "list"}', "bad_json"),
        ('{"op": "list"}', "bad_request"),
        ('{"id": true, "op": "list"}', "bad_request"),
        ('{"id": 1, "op": "launch"}', "unknown_op"),
        ('{"id": 1, "op": "list", "extra": 1}', "bad_request"),
        ('{"id": 1, "op": "list", "args": {"limit": "10"}}', "bad_request"),
        ('{"id": 1, "op": "list", "args": {"limit": true}}', "bad_request"),
        ('{"id": 1, "op": "list", "args": {"limit": 0}}', "bad_request"),
        ('{"id": 1, "op": "list", "args": {"sort": "token"}}', "bad_selector"),
        ('{"id": 1, "op": "list", "args": {"colour": "red"}}', "bad_request"),
        ('{"id": 1, "op": "get"}', "bad_request"),
        ('{"id": 1, "op": "send", "args": {"selector": {}, "text": "x"}}', "bad_selector"),
        ('{"id": 1, "op": "send", "args": {"selector": {"user": "a"}}}', "bad_request"),
        ('{"id": 1, "op": "send", "args": {"selector": {"user": "a"}, "binary": "%%"}}', "bad_request"),
        ('{"id": 1, "op": "disconnect", "args": {"selector": {"user": "a"}, "code": 1005}}', "bad_request"),
        ('{"id": 1, "op": "shutdown", "args": {"mode": "now"}}', "bad_request"),
        ('{"id": 1, "op": "shutdown", "args": {"mode": "keep_alive", "deadline": -1}}', "bad_request"),
        # Python's json reads these, but they are not JSON: echoed into a reply
        # or the audit log they would make lines no strict parser reads.
        ('{"id": 1, "op": "subscribe", "args": {"stats_interval": NaN}}', "bad_json"),
        ('{"id": 1, "op": "subscribe", "args": {"stats_interval": Infinity}}', "bad_json"),
        ('{"id": 1, "op": "shutdown", "args": {"mode": "keep_alive", "deadline": -Infinity}}',
         "bad_json"),
    ],
)
def test_bad_requests_get_stable_error_codes(frame, code):
    """Every kind of malformed request maps to one stable error code."""
    assert parse_error(frame).code == code


def test_errors_carry_the_request_id_when_readable():
    """A reply to a bad request can be matched to it by id."""
    assert parse_error('{"id": "r7", "op": "launch"}').request_id == "r7"


def test_binary_payload_is_base64():
    """A binary send carries base64 that decodes to the original bytes."""
    payload = bytes(range(256))
    request = wire.parse_request(json.dumps(
        {"id": 1, "op": "send", "args": {"selector": {"everyone": True},
                                         "binary": base64.b64encode(payload).decode()}}))
    assert wire.decode_payload(request.args) == payload


def test_replies_and_events_round_trip_through_the_client_parser():
    """What the server encodes, the client parses back."""
    ok = wire.parse_message(wire.encode_reply(3, {"count": 2}))
    assert ok == wire.Reply(id=3, ok=True, result={"count": 2})
    error = wire.parse_message(wire.encode_error(4, "forbidden", "read-only"))
    assert (error.ok, error.error_code, error.error_message) == (False, "forbidden", "read-only")
    event = wire.parse_message(wire.encode_event("stats", {"connections": 1}, 12.5))
    assert event == wire.Event(kind="stats", time=12.5, data={"connections": 1})
    request = wire.parse_request(wire.encode_request(9, "get", {"id": "abc"}))
    assert request.args == {"id": "abc", "node": None, "timeout": wire.READ_TIMEOUT}


def test_mutating_operations_are_the_ones_that_change_the_server():
    """The read-only role is refused exactly send, disconnect, shutdown, and
    tap_start (which shows the users' data)."""
    assert wire.MUTATING_OPERATIONS == {"send", "disconnect", "shutdown", "tap_start"}


@pytest.mark.parametrize(
    "frame, cls",
    [
        ("{not json", errors.MalformedFrame),
        ('{"id": 1, "op": "launch"}', errors.UnknownOperation),
        ('{"id": 1, "op": "send", "args": {"selector": {}, "text": "x"}}', errors.SelectorError),
        ('{"id": 1, "op": "list", "args": {"sort": "token"}}', errors.SelectorError),
        ('{"id": 1, "op": "get"}', errors.ProtocolViolation),
    ],
)
def test_a_refused_request_raises_the_class_of_its_code(frame, cls):
    """Parsing raises the class registered for the code it reports, so the
    client, reading the code back, raises that same class."""
    error = parse_error(frame)
    assert type(error) is cls and errors.ERROR_CLASSES[error.code] is cls


def test_a_refused_request_carries_what_the_frame_held():
    """The error of a frame that failed validation has its id, its (known)
    operation and its raw arguments: no caller parses the frame again."""
    error = parse_error('{"id": 5, "op": "disconnect", '
                        '"args": {"selector": {"user": "a"}, "code": 1005}}')
    assert (error.request_id, error.op) == (5, "disconnect")
    assert error.raw_args == {"selector": {"user": "a"}, "code": 1005}
    assert "1005 cannot be sent" in error.message
    bad_id = parse_error('{"id": true, "op": "send", "args": [1]}')
    assert (bad_id.request_id, bad_id.op, bad_id.raw_args) == (None, "send", [1])
    # An operation that does not exist stays out of metric labels and the audit log.
    unknown = parse_error('{"id": "x", "op": "launch", "args": {"n": 1}}')
    assert (unknown.request_id, unknown.op, unknown.raw_args) == ("x", None, {"n": 1})
    assert parse_error("[]").request_id is None


def test_shutdown_modes_and_close_rules_are_the_shared_ones():
    """The wire refuses exactly what the shared rules refuse, with their words."""
    too_long = parse_error(json.dumps({"id": 1, "op": "shutdown", "args": {
        "mode": "graceful", "reason": "é" * 62}}))
    assert too_long.message == "close reason must be at most 123 bytes of UTF-8"
    mode = parse_error('{"id": 1, "op": "shutdown", "args": {"mode": "now"}}')
    assert mode.message == "mode must be 'graceful' or 'keep_alive'"
    request = wire.parse_request('{"id": 1, "op": "shutdown", "args": {"mode": "keep_alive"}}')
    assert request.args["mode"] == ShutdownMode.KEEP_ALIVE


def test_an_error_reply_reads_back_as_the_class_the_server_raised():
    """What the server encodes from an exception, the client turns back into it."""
    sent = errors.UnknownConnection("no open connection with id abc")
    reply = wire.parse_message(wire.encode_error(3, sent.code, sent.message))
    received = reply.exception()
    assert type(received) is errors.UnknownConnection
    assert received.message == sent.message
    assert type(wire.parse_message('{"id": 1, "ok": false}').exception()) is errors.InternalError


def test_an_encoded_list_is_written_as_its_text_beside_the_rest_of_the_reply():
    """A reply's value that carries its JSON text is written as that text (not
    encoded again), the rest as always: the frame reads back as the plain one,
    with or without other values."""
    rows = [{"id": "a/1", "n": 1.5}, {"id": "a/2", "n": None}]
    marked = wire.EncodedList(rows, '[{"id":"a/1","n":1.5},{"id":"a/2","n":"from the text"}]')
    assert marked == rows
    frame = wire.encode_reply(7, {"connections": marked, "total": 2, "next_cursor": None})
    assert json.loads(frame) == {"id": 7, "ok": True, "result": {
        "connections": [{"id": "a/1", "n": 1.5}, {"id": "a/2", "n": "from the text"}],
        "total": 2, "next_cursor": None}}
    alone = wire.encode_reply(8, {"connections": wire.EncodedList(rows, "[]")})
    assert json.loads(alone) == {"id": 8, "ok": True, "result": {"connections": []}}


def test_a_request_read_from_json_already_is_checked_as_its_frame_would_be():
    """What a node acting for another checks (parse_request_object): the same
    request as its frame gives, and the same refusals, a lone surrogate
    anywhere included (no frame tells that none can be there)."""
    args = {"selector": {"user": "ann"}, "text": "hi", "dry_run": True}
    frame = json.dumps({"id": 1, "op": "send", "args": args})
    assert wire.parse_request_object({"id": 1, "op": "send", "args": args}) == (
        wire.parse_request(frame))
    with pytest.raises(ProtocolViolation, match="lone UTF-16 surrogate"):
        wire.parse_request_object({"id": 1, "op": "send",
                                   "args": {**args, "text": "\ud800"}})
    with pytest.raises(ProtocolViolation, match="unknown argument"):
        wire.parse_request_object({"id": 1, "op": "list", "args": {"everyone": True}})
    with pytest.raises(errors.MalformedFrame):
        wire.parse_request_object([1, "list"])  # type: ignore[arg-type]

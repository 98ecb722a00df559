"""The values both sides of the control plane share, and the rules on them."""

from __future__ import annotations

import json

import pytest

from wsconsole.server.protocol import (
    MAX_CLOSE_REASON_BYTES,
    MAX_TOKEN_LENGTH,
    SENDABLE_CLOSE_CODES_TEXT,
    EventKind,
    HubState,
    Role,
    ShutdownMode,
    check_close_code,
    check_close_reason,
    parse_close_code,
    token_problem,
)


def test_enum_members_are_their_wire_strings():
    """A state, role, mode or event kind equals the string on the wire, and
    encodes to it in JSON, so code comparing with strings keeps working."""
    assert HubState.SERVING == "serving" and Role.READ_ONLY == "read_only"
    assert ShutdownMode.KEEP_ALIVE == "keep_alive" and EventKind.STATS == "stats"
    assert json.dumps({"state": HubState.DRAINING}) == '{"state": "draining"}'
    assert HubState("stopped") is HubState.STOPPED
    assert {EventKind.BURST: 1}.get("burst") == 1  # a member is a dict key for its string
    assert f"{ShutdownMode.GRACEFUL}" == "graceful"


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, 1012, 1013, 3000, 4000, 4999])
def test_sendable_close_codes_pass(code):
    """The codes an operator may send come back unchanged."""
    assert check_close_code(code) == code


@pytest.mark.parametrize("code", [999, 1002, 1003, 1005, 1006, 1009, 1015, 2999, 5000])
def test_other_close_codes_are_refused_with_the_ones_that_work(code):
    """A reserved or protocol-failure code is refused, and the message says
    which codes may be sent."""
    with pytest.raises(ValueError) as info:
        check_close_code(code)
    assert str(info.value) == (f"close code {code} cannot be sent; use "
                               "1000, 1001, 1008, 1011, 1012, 1013 or 3000-4999")
    assert SENDABLE_CLOSE_CODES_TEXT in str(info.value)


def test_typed_close_codes_are_numbers_then_sendable():
    """What an operator types is read as a number, then checked."""
    assert parse_close_code(" 4000 ") == 4000
    with pytest.raises(ValueError, match="must be a number, not 'bye'"):
        parse_close_code("bye")
    with pytest.raises(ValueError, match="1005 cannot be sent"):
        parse_close_code("1005")


def test_close_reason_is_limited_in_utf8_bytes_not_characters():
    """123 bytes fit; 62 two-byte characters (124 bytes) do not."""
    assert MAX_CLOSE_REASON_BYTES == 123
    assert check_close_reason("x" * 123) == "x" * 123
    assert check_close_reason("é" * 61) == "é" * 61
    with pytest.raises(ValueError, match="at most 123 bytes of UTF-8"):
        check_close_reason("é" * 62)


@pytest.mark.parametrize(
    "token, problem",
    [
        ("s3cr3t-Token_~!", None),
        ("x" * MAX_TOKEN_LENGTH, None),
        ("", "is empty"),
        ("x" * (MAX_TOKEN_LENGTH + 1), "is longer than 1024 characters"),
        ("two words", "must be printable ASCII without spaces"),
        ("line\nbreak", "must be printable ASCII without spaces"),
        ("tab\there", "must be printable ASCII without spaces"),
        ("del\x7f", "must be printable ASCII without spaces"),
        ("café", "must be printable ASCII without spaces"),
    ],
)
def test_one_token_rule_for_both_sides(token, problem):
    """A token must fit an HTTP header as the client sends it; the problem is a
    phrase that never repeats the token."""
    assert token_problem(token) == problem

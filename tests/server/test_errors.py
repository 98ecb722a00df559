"""The exception tree and its registry of error codes, with plain values."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsconsole.server import errors
from wsconsole.server.errors import (
    ERROR_CLASSES,
    ControlError,
    Forbidden,
    InternalError,
    MalformedFrame,
    ProtocolViolation,
    SelectorError,
    ServerStateError,
    Unauthorized,
    UnknownConnection,
    UnknownOperation,
    WsconsoleError,
    error_class,
    markdown_table,
)

EXPORTED_CLASSES = [getattr(errors, name) for name in errors.__all__
                    if isinstance(getattr(errors, name), type)]


def test_every_exported_error_defines_its_own_code_once():
    """Each class below the root has a code of its own, and no two share one."""
    subclasses = [cls for cls in EXPORTED_CLASSES if cls is not WsconsoleError]
    assert all("code" in cls.__dict__ for cls in subclasses)
    assert sorted(ERROR_CLASSES) == sorted(cls.code for cls in subclasses)
    assert all(ERROR_CLASSES[cls.code] is cls for cls in subclasses)


def test_every_code_has_a_meaning_written_on_its_class():
    """The docstring of a code's class is what the code means (the README lists it)."""
    for code, cls in ERROR_CLASSES.items():
        assert cls.__doc__ and cls.__doc__.strip(), code


def test_a_second_class_with_a_taken_code_is_refused():
    """Defining a code twice fails when the class is defined, not on the wire."""
    with pytest.raises(TypeError, match="already defined by UnknownConnection"):
        type("Duplicate", (WsconsoleError,), {"code": "unknown_connection"})
    assert ERROR_CLASSES["unknown_connection"] is UnknownConnection


@pytest.mark.parametrize("cls", [UnknownConnection, SelectorError, Unauthorized, Forbidden,
                                 ServerStateError, MalformedFrame, UnknownOperation,
                                 InternalError])
def test_an_error_read_from_the_wire_is_the_class_that_was_sent(cls):
    """What the server raised, the client raises: same class, same message."""
    sent = cls("what went wrong")
    received = WsconsoleError.from_wire(sent.code, sent.message)
    assert type(received) is cls
    assert (received.code, received.message, str(received)) == (
        sent.code, "what went wrong", "what went wrong")


def test_an_unknown_code_reads_as_a_control_error_keeping_the_code():
    """A code from a newer server is still an error with that code, never a crash."""
    received = WsconsoleError.from_wire("quota_exceeded", "too many")
    assert type(received) is ControlError
    assert (received.code, received.message) == ("quota_exceeded", "too many")
    assert ControlError.code == "control_error"  # the class keeps its own
    assert error_class("quota_exceeded") is ControlError
    assert error_class("forbidden") is Forbidden


def test_request_errors_are_protocol_violations_that_carry_the_request():
    """Malformed frames, unknown operations and bad selectors are all protocol
    violations: one except clause catches what parsing can refuse."""
    assert issubclass(MalformedFrame, ProtocolViolation)
    assert issubclass(UnknownOperation, ProtocolViolation)
    assert issubclass(SelectorError, ProtocolViolation)
    error = SelectorError("empty selector", request_id=7, op="send", raw_args={"x": 1})
    assert (error.request_id, error.op, error.raw_args) == (7, "send", {"x": 1})
    assert SelectorError("no context").request_id is None


def test_the_readme_lists_every_code_with_the_meaning_on_its_class():
    """The README's error table is the one generated from the classes."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    if not readme.exists():
        pytest.skip("not running from a source checkout")
    table = markdown_table()
    assert all(f"| `{code}` |" in table for code in ERROR_CLASSES)
    assert table in readme.read_text(encoding="utf-8"), (
        "regenerate with: python -c 'from wsconsole.server.errors import markdown_table; "
        "print(markdown_table())'")

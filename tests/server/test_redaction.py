"""Secrets in headers, queries and websockets' handshake log lines, with plain values."""

from __future__ import annotations

import logging

import pytest

from wsconsole.server.redaction import (
    REDACTED,
    SECRET_HEADERS,
    RedactingLogger,
    redact_headers,
    redact_log_args,
    redact_query,
)


def test_secret_headers_are_redacted_whatever_their_case():
    """Authorization, Cookie and similar keep their name, lose their value."""
    pairs = [("Authorization", "Bearer t"), ("COOKIE", "s=1"), ("Accept", "*/*")]
    assert redact_headers(pairs) == [["Authorization", REDACTED], ["COOKIE", REDACTED],
                                     ["Accept", "*/*"]]
    assert SECRET_HEADERS == {"authorization", "proxy-authorization", "cookie", "set-cookie"}


def test_secret_looking_query_values_are_redacted_the_rest_kept_byte_for_byte():
    """Only the values of keys that look like credentials are replaced."""
    assert redact_query("user=ann&access_token=abc&x") == "user=ann&access_token=[redacted]&x"
    assert redact_query("room=a%20b") == "room=a%20b"


@pytest.mark.parametrize(
    "msg, args, expected",
    [
        ("< %s: %s", ("Cookie", "s=1"), ("Cookie", REDACTED)),
        ("> %s: %s", ("authorization", "Bearer t"), ("authorization", REDACTED)),
        ("< %s: %s", ("Host", "example.com"), ("Host", "example.com")),
        ("< %s %s %s", ("GET", "/ws?token=abc&room=1", "HTTP/1.1"),
         ("GET", "/ws?token=[redacted]&room=1", "HTTP/1.1")),
        ("< %s %s %s", ("GET", "/ws", "HTTP/1.1"), ("GET", "/ws", "HTTP/1.1")),
        ("connection %s: %s", ("Cookie", "kept"), ("Cookie", "kept")),
    ],
)
def test_handshake_log_lines_lose_their_secrets(msg, args, expected):
    """websockets' DEBUG header and request lines are redacted; other lines are not."""
    assert redact_log_args(msg, args) == expected


def test_the_redacting_logger_hands_handlers_redacted_records(caplog):
    """A log handler never sees the secret value, and the record keeps the
    wrapped logger's name."""
    logger = RedactingLogger(logging.getLogger("test.redaction"))
    with caplog.at_level(logging.DEBUG, logger="test.redaction"):
        logger.debug("< %s: %s", "Authorization", "Bearer s3cret")
        logger.debug("< %s: %s", "Accept", "text/plain")
    assert [r.getMessage() for r in caplog.records] == [
        "< Authorization: [redacted]", "< Accept: text/plain"]
    assert {r.name for r in caplog.records} == {"test.redaction"}
    assert "s3cret" not in caplog.text

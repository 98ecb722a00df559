"""Secrets in headers, queries, free text and log lines: the rule with plain
values, then what a real server shows (``list``, ``get``, events, the logs of
both ports) to real clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import traceback

import pytest
from websockets.asyncio.client import connect

from wsconsole.server.redaction import (
    DEFAULT_RULES,
    PUBLIC_HEADERS,
    REDACTED,
    SECRET_HEADERS,
    RedactedException,
    RedactingLogger,
    is_secret_name,
    name_words,
    redact_headers,
    redact_log_args,
    redact_query,
    redact_target,
    redact_text,
)

from wsconsole.server import serve
from wsconsole.server.config import ControlConfig

from tests.helpers import TIMEOUT

from .control_helpers import TOKEN, Control, app, control, public, running
from .test_serve_command import WSCONSOLE, start

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl"


# Names


@pytest.mark.parametrize("name, words", [
    ("access_token", ["access", "token"]),
    ("accessToken", ["access", "token"]),
    ("APIKey", ["api", "key"]),
    ("X-Amz-Security-Token", ["x", "amz", "security", "token"]),
    ("connect.sid", ["connect", "sid"]),
    ("auth[token]", ["auth", "token"]),
    ("X-Hub-Signature-256", ["x", "hub", "signature", "256"]),
    ("token2", ["token", "2"]),
    ("XMLHttpRequest", ["xml", "http", "request"]),
    ("--", []),
])
def test_names_are_cut_into_case_folded_words(name, words):
    """Words split at separators, letter/digit changes and case boundaries."""
    assert name_words(name) == words


SECRET_NAMES = [
    # tokens of every kind
    "token", "TOKEN", "access_token", "refresh_token", "id_token", "accessToken",
    "accesstoken", "authtoken", "oauth_token", "jwt", "jwtToken", "bearer",
    "X-Auth-Token", "X-Access-Token", "X-Csrf-Token", "X-XSRF-TOKEN", "_csrf",
    "X-Amz-Security-Token", "ticket", "code_verifier", "client_assertion", "otp",
    # keys
    "key", "api_key", "apiKey", "apikey", "API-KEY", "X-Api-Key", "x-goog-api-key",
    "access_key", "secret_key", "privateKey", "s3key",
    # passwords and secrets
    "password", "Password", "passwd", "passphrase", "pwd", "pw", "pass",
    "user_password", "secret", "client_secret", "clientSecret", "credentials",
    "X-Amz-Credential",
    # signatures
    "signature", "sig", "X-Amz-Signature", "X-Hub-Signature-256", "hmac",
    # sessions
    "session", "session_id", "sessionId", "sessionid", "sid", "connect.sid",
    "JSESSIONID", "PHPSESSID", "ASP.NET_SessionId",
    # auth, cookies
    "auth", "Authorization", "Proxy-Authorization", "cookie", "Set-Cookie",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_the_names_real_services_use_for_secrets_are_secret(name):
    """api keys, auth tokens, passwords, signatures, session ids, JWTs."""
    assert is_secret_name(name)


PUBLIC_NAMES = [
    "user", "room", "topic", "keyboard", "monkey", "hotkey", "key_id", "keyspace",
    "AWSAccessKeyId", "author", "passenger", "compass", "design", "signal",
    "sidebar", "sessions", "tokenizer", "version", "lang", "v", "callback",
    "state", "code", "nonce", "client_id", "expires_in", "sha256", "",
]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_a_secret_word_inside_a_longer_word_does_not_make_a_name_secret(name):
    """Whole words only, never substrings: keyboard, monkey and author stay visible."""
    assert not is_secret_name(name)


def test_query_names_are_matched_as_the_application_decodes_them():
    """A percent-encoded, plus-encoded or double-encoded name is decoded first."""
    secret = DEFAULT_RULES.query_name_is_secret
    assert secret("t%6Fken") and secret("T%6FKEN") and secret("api+key")
    assert secret("t%256Fken")  # double-encoded
    assert secret("%70%77%64")  # pwd
    assert not secret("k%65yboard")
    assert redact_query("t%6Fken=abc&user=ann") == "t%6Fken=[redacted]&user=ann"


def test_headers_the_word_rule_would_hide_but_carry_no_secret_stay_visible():
    """Sec-WebSocket-Key is the handshake's nonce, not a key."""
    assert "sec-websocket-key" in PUBLIC_HEADERS
    assert not DEFAULT_RULES.header_is_secret("Sec-WebSocket-Key")
    assert DEFAULT_RULES.header_is_secret("X-Api-Key")
    assert {"authorization", "cookie", "x-api-key", "x-auth-token"} <= SECRET_HEADERS


# Values


def test_secret_headers_are_redacted_whatever_their_case():
    """Authorization, Cookie, X-Api-Key and similar keep their name, lose their value."""
    pairs = [("Authorization", "Bearer t"), ("COOKIE", "s=1"), ("x-api-key", "k"),
             ("X-Auth-Token", "t"), ("Accept", "*/*"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZQ==")]
    assert redact_headers(pairs) == [
        ["Authorization", REDACTED], ["COOKIE", REDACTED], ["x-api-key", REDACTED],
        ["X-Auth-Token", REDACTED], ["Accept", "*/*"], ["Sec-WebSocket-Key", "dGhlIHNhbXBsZQ=="]]


def test_jwts_and_urls_inside_other_header_values_are_redacted():
    """A JWT smuggled in Sec-WebSocket-Protocol, a token in a Referer's query."""
    pairs = [("Sec-WebSocket-Protocol", f"chat, {JWT}"),
             ("Referer", "https://app.example/page?user=ann&token=abc#top"),
             ("X-Original-URI", "/ws?pwd=x")]
    assert redact_headers(pairs) == [
        ["Sec-WebSocket-Protocol", f"chat, {REDACTED}"],
        ["Referer", "https://app.example/page?user=ann&token=[redacted]#top"],
        ["X-Original-URI", "/ws?pwd=[redacted]"]]


@pytest.mark.parametrize("query, shown", [
    ("", ""),
    ("user=ann&access_token=abc&x", "user=ann&access_token=[redacted]&x"),
    ("room=a%20b", "room=a%20b"),
    ("key=abc&pwd=hunter2", "key=[redacted]&pwd=[redacted]"),
    ("keyboard=qwerty&monkey=1", "keyboard=qwerty&monkey=1"),
    ("TOKEN=x&Password=y&api_key=z&sig=1", "TOKEN=[redacted]&Password=[redacted]&api_key=[redacted]&sig=[redacted]"),
    ("a=1;session=s", "a=1;session=[redacted]"),  # ';' separates for some frameworks
    ("token=", "token="),  # nothing to hide
    (f"x={JWT}&y=1", f"x={REDACTED}&y=1"),
    (JWT, REDACTED),
    ("user=ann&&token=t&", "user=ann&&token=[redacted]&"),
])
def test_secret_query_values_are_redacted_the_rest_kept_byte_for_byte(query, shown):
    """Only the values of secret names (and JWTs) are replaced."""
    assert redact_query(query) == shown


def test_a_request_target_keeps_its_path_and_redacts_its_query():
    """Paths are shown as they are; only the query after '?' is redacted."""
    assert redact_target("/live/room?user=ann&token=t") == "/live/room?user=ann&token=[redacted]"
    assert redact_target("/token/abc") == "/token/abc"  # paths are shown as they are


def test_free_text_quoting_a_request_line_is_redacted():
    """websockets quotes a malformed request line in its exception's message."""
    assert (redact_text("invalid HTTP request line: b'GET /ws?room=1&token=abc'")
            == "invalid HTTP request line: b'GET /ws?room=1&token=[redacted]'")
    assert redact_text(f"bad value {JWT}!") == f"bad value {REDACTED}!"
    assert redact_text("a=1 and b=2") == "a=1 and b=2"


# Names an operator adds


def test_added_names_extend_the_defaults_and_ignore_case_and_separators():
    """tenant_key hides Tenant-Key and tenantKey, not tenant_key_id; the
    defaults still apply."""
    rules = DEFAULT_RULES.extended(headers=["X-Tenant"], query=["code", "tenant_key"])
    assert rules.header_is_secret("x-tenant") and rules.header_is_secret("X_Tenant")
    assert not rules.header_is_secret("X-Tenant-Id")
    assert rules.header_is_secret("Authorization")  # defaults kept
    assert rules.query_name_is_secret("code") and rules.query_name_is_secret("Code")
    assert rules.query_name_is_secret("c%6Fde")
    assert not rules.query_name_is_secret("error_code")
    assert rules.query_name_is_secret("tenantKey") and rules.query_name_is_secret("Tenant-Key")
    assert not rules.query_name_is_secret("tenant_key_id")
    assert rules.redact_query("code=abc&state=s") == "code=[redacted]&state=s"
    assert DEFAULT_RULES.redact_query("code=abc") == "code=abc"  # the defaults unchanged
    assert rules.extended(query=["otp2"]).extra_query == {"code", "tenantkey", "otp2"}


def test_an_added_header_wins_over_the_public_list():
    """An operator may hide Sec-WebSocket-Key after all."""
    rules = DEFAULT_RULES.extended(headers=["Sec-WebSocket-Key"])
    assert rules.header_is_secret("sec-websocket-key")


def test_a_name_without_a_letter_or_digit_is_refused():
    """Such a name would compact to nothing and match nothing: an error, not a no-op."""
    with pytest.raises(ValueError, match="no letter or digit"):
        DEFAULT_RULES.extended(query=["--"])


def test_a_single_string_is_one_name_not_its_letters():
    """extended(headers="X-Tenant") adds one name, not X, -, T, ..."""
    rules = DEFAULT_RULES.extended(headers="X-Tenant")
    assert rules.extra_headers == {"xtenant"}


# Log lines


@pytest.mark.parametrize(
    "msg, args, expected",
    [
        ("< %s: %s", ("Cookie", "s=1"), ("Cookie", REDACTED)),
        ("> %s: %s", ("authorization", "Bearer t"), ("authorization", REDACTED)),
        ("< %s: %s", ("X-Api-Key", "k"), ("X-Api-Key", REDACTED)),
        ("< %s: %s", ("Host", "example.com"), ("Host", "example.com")),
        ("< %s %s %s", ("GET", "/ws?token=abc&room=1", "HTTP/1.1"),
         ("GET", "/ws?token=[redacted]&room=1", "HTTP/1.1")),
        ("< %s %s %s", ("GET", "/?t%6Fken=abc", "HTTP/1.1"),
         ("GET", "/?t%6Fken=[redacted]", "HTTP/1.1")),
        ("< %s %s %s", ("GET", "/ws", "HTTP/1.1"), ("GET", "/ws", "HTTP/1.1")),
        ("> GET %s HTTP/1.1", ("/ws?access_token=abc",), ("/ws?access_token=[redacted]",)),
        ("connection %s: %s", ("Cookie", "kept"), ("Cookie", "kept")),
    ],
)
def test_handshake_log_lines_lose_their_secrets(msg, args, expected):
    """websockets' DEBUG header and request lines are redacted; other lines are not."""
    assert redact_log_args(msg, args) == expected


def test_a_log_line_without_secrets_keeps_its_arguments_object():
    """Nothing is copied when there is nothing to hide."""
    args = ("GET", "/ws?room=1", "HTTP/1.1")
    assert redact_log_args("< %s %s %s", args) is args


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


def test_the_redacting_logger_uses_the_rules_it_is_given(caplog):
    """Names an operator added are redacted in log lines too."""
    logger = RedactingLogger(logging.getLogger("test.redaction"),
                             DEFAULT_RULES.extended(headers=["X-Tenant"]))
    with caplog.at_level(logging.DEBUG, logger="test.redaction"):
        logger.debug("< %s: %s", "X-Tenant", "acme-s3cret")
    assert caplog.records[0].getMessage() == "< X-Tenant: [redacted]"


def test_exceptions_in_log_records_lose_the_secrets_their_messages_quote(caplog):
    """A traceback logged at DEBUG (websockets' '! no valid HTTP request')
    quotes the request line: the logged copy is redacted, down the cause chain;
    the exception itself is left alone."""
    logger = RedactingLogger(logging.getLogger("test.redaction"))
    line = "invalid HTTP request line: b'GET /?token=" + "s3cret'"  # not in the source line
    with caplog.at_level(logging.DEBUG, logger="test.redaction"):
        try:
            try:
                raise ValueError(line)
            except ValueError as exc:
                original = exc
                raise RuntimeError("did not receive a valid HTTP request") from exc
        except RuntimeError:
            logger.debug("! no valid HTTP request", exc_info=True)
    assert "token=[redacted]" in caplog.text and "s3cret" not in caplog.text
    assert "did not receive a valid HTTP request" in caplog.text
    assert "raise ValueError" in caplog.text  # the traceback is still there
    assert "s3cret" in str(original)


def test_an_exception_with_a_message_of_its_own_is_replaced_by_a_stand_in():
    """When the message is not made from args, a RedactedException names the type."""
    class Odd(Exception):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def __str__(self) -> str:
            return f"bad {self.path}"

    path = "/x?pwd=" + "hunter2"  # not in the source line the traceback shows
    try:
        raise Odd(path)
    except Odd as exc:
        kind, shown, tb = DEFAULT_RULES.redact_exc_info(exc)
    text = "".join(traceback.format_exception(kind, shown, tb))
    assert kind is RedactedException and "Odd: bad /x?pwd=[redacted]" in text
    assert "hunter2" not in text and "raise Odd" in text


def test_an_exception_without_secrets_is_logged_as_it_is():
    """The same exception (or exc_info tuple) comes back when nothing is redacted."""
    exc = ValueError("plain")
    assert DEFAULT_RULES.redact_exc_info(exc) is exc
    info = (ValueError, exc, None)
    assert DEFAULT_RULES.redact_exc_info(info) is info


# What a real server shows

# Each secret is a distinct string, so that a leak names the way it leaked.
SECRET_QUERY = "user=ann&key=k-s3cret&pwd=p-s3cret&t%6Fken=t-s3cret&keyboard=qwerty"
SECRET_REQUEST_HEADERS = {"X-Api-Key": "xak-s3cret", "X-Auth-Token": "xat-s3cret",
                          "X-Amz-Security-Token": "amz-s3cret", "X-Trace": "trace-1"}


def assert_no_secret(text: str) -> None:
    assert "s3cret" not in text, [w for w in text.split() if "s3cret" in w]


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the servers logged, tracebacks included; not the test's own
    clients (websockets.client logs their requests as they are)."""
    return "\n".join(caplog.handler.format(record) for record in caplog.records
                     if record.name != "websockets.client")


async def test_list_get_and_events_never_show_the_secrets_a_client_sent():
    """key=, pwd=, t%6Fken=, X-Api-Key, X-Auth-Token and a JWT in
    Sec-WebSocket-Protocol are redacted in list, get and connection_opened;
    keyboard=qwerty and X-Trace stay as sent."""
    headers = dict(SECRET_REQUEST_HEADERS)
    headers["Sec-WebSocket-Protocol"] = f"chat, {JWT}"
    async with running() as server, control(server) as ctl:
        await ctl.ok("subscribe", stats_interval=60)
        async with public(server, f"/live?{SECRET_QUERY}", additional_headers=headers):
            opened = await ctl.event(lambda e: e.kind == "connection_opened")
            [listed] = (await ctl.ok("list"))["connections"]
            detail = await ctl.ok("get", id=listed["id"])
    shown = "user=ann&key=[redacted]&pwd=[redacted]&t%6Fken=[redacted]&keyboard=qwerty"
    assert listed["query"] == opened.data["query"] == detail["query"] == shown
    request_headers = {name.lower(): value for name, value in detail["request_headers"]}
    assert request_headers["x-api-key"] == request_headers["x-auth-token"] == REDACTED
    assert request_headers["x-amz-security-token"] == REDACTED
    assert request_headers["x-trace"] == "trace-1"
    assert request_headers["sec-websocket-protocol"] == f"chat, {REDACTED}"
    assert request_headers["sec-websocket-key"] not in ("", REDACTED)
    for what in (listed, opened.data, detail):
        assert_no_secret(json.dumps(what))
    assert JWT not in json.dumps(detail)


async def test_debug_logs_of_both_ports_never_carry_a_secret(caplog):
    """At DEBUG, the request lines and headers of the public server and of the
    control listener (GET /?token=...) are logged redacted."""
    caplog.set_level(logging.DEBUG)
    async with running() as server:
        async with public(server, f"/live?{SECRET_QUERY}",
                          additional_headers=SECRET_REQUEST_HEADERS):
            pass
        async with connect(f"{server.control.url}/?token=ctl-s3cret",
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send(json.dumps({"id": 1, "op": "hello", "args": {}}))
            await ws.recv()
    text = server_log(caplog)
    assert "GET /live?user=ann&key=[redacted]&pwd=[redacted]&t%6Fken=[redacted]" in text
    assert "< X-Api-Key: [redacted]" in text and "< X-Trace: trace-1" in text
    assert "GET /?token=[redacted] HTTP/1.1" in text  # the control port's request line
    assert "< Authorization: [redacted]" in text
    assert_no_secret(text)
    assert TOKEN not in text
    names = {record.name for record in caplog.records}
    assert {"websockets.server", "wsconsole.control.websockets"} <= names


async def test_a_malformed_request_line_is_logged_without_its_query(caplog):
    """websockets logs an unparsable request line inside a DEBUG traceback: on
    either port, the secret in it is redacted."""
    caplog.set_level(logging.DEBUG)
    async with running() as server:
        control_port = server.control.port
        for port in (server.port, control_port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ws?room=1&password=pw-s3cret\r\n\r\n")  # no HTTP version
            async with asyncio.timeout(TIMEOUT):
                await reader.read()  # websockets closes the connection
            writer.close()
    text = server_log(caplog)
    assert text.count("ValueError: invalid HTTP request line") == 2
    assert text.count("password=[redacted]") == 2
    assert_no_secret(text)


async def test_names_an_embedder_adds_are_redacted_in_get_list_and_logs(caplog):
    """serve(redact_headers=, redact_query=) hides X-Tenant and code= on top of
    the defaults, on both ports; error_code= stays visible."""
    caplog.set_level(logging.DEBUG)
    config = ControlConfig(port=0, token=TOKEN)
    async with serve(app, "127.0.0.1", 0, control=config, redact_headers=["X-Tenant"],
                     redact_query=["code"]) as server:
        async with connect(f"{server.control.url}/?code=ctl-s3cret",
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            ctl = Control(ws)
            async with public(server, "/cb?code=c-s3cret&error_code=4&token=t-s3cret",
                              additional_headers={"X-Tenant": "acme-s3cret",
                                                  "X-Api-Key": "k-s3cret"}):
                [listed] = (await ctl.ok("list"))["connections"]
                detail = await ctl.ok("get", id=listed["id"])
    assert listed["query"] == "code=[redacted]&error_code=4&token=[redacted]"
    headers = dict(detail["request_headers"])
    assert headers["X-Tenant"] == headers["X-Api-Key"] == REDACTED
    assert_no_secret(json.dumps(detail))
    text = server_log(caplog)
    assert "< X-Tenant: [redacted]" in text
    assert "GET /?code=[redacted] HTTP/1.1" in text  # the control port
    assert_no_secret(text)


async def test_serve_redact_options_extend_the_defaults_in_the_log():
    """`wsconsole serve --redact-header X-Tenant --redact-query code` at debug
    level logs both redacted, and the built-in names still are."""

    process, url = await start(["--no-control", "--log-level", "debug",
                                "--redact-header", "X-Tenant", "--redact-query", "code"])
    try:
        async with connect(url + "/x?code=c-s3cret&state=ok&pwd=p-s3cret",
                           additional_headers={"X-Tenant": "acme-s3cret"}) as client:
            await client.send("hi")
            assert await client.recv() == "hi"
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT * 2):
            _, err = await process.communicate()
    log = err.decode()
    assert "GET /x?code=[redacted]&state=ok&pwd=[redacted] HTTP/1.1" in log
    assert "< X-Tenant: [redacted]" in log
    assert_no_secret(log)


def test_serve_refuses_a_redaction_name_without_a_letter_or_digit():
    """A name that could match nothing is a usage error (exit 2), not a silent no-op."""

    result = subprocess.run([*WSCONSOLE, "serve", "--redact-query=.", "--no-control"],
                            capture_output=True, text=True, timeout=TIMEOUT * 2)
    assert result.returncode == 2
    assert "--redact-query" in result.stderr and "no letter or digit" in result.stderr

"""Hostile input on the control plane, and the audit log that records it.

Regression tests of issue 11, items 1-4: a lone surrogate anywhere in a
request is a bad_request and ends nobody's stream; the audit log fails
closed, follows rotation, and shows its state; every request that names a
mutating operation is one line; every line is flat, bounded, strict JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from websockets.asyncio.client import connect

from tests.helpers import TIMEOUT, wait_for
from tests.stress.fuzz_control import run_fuzz
from tests.stress.strict import AUDIT_MAX_DEPTH, depth, read_audit_file, strict_loads
from wsconsole.server import serve, wire
from wsconsole.server.config import ControlConfig
from wsconsole.server.control import ControlListener
from wsconsole.server.control.audit import AUDIT_IDS_LIMIT, AUDIT_TEXT_LIMIT
from wsconsole.server.errors import AuditFailed, ProtocolViolation
from wsconsole.server.fleet import Answer, LocalFleet
from wsconsole.server.protocol import AuditState, EventKind

from .control_helpers import (
    READ_ONLY_TOKEN,
    TOKEN,
    Control,
    app,
    control,
    http_request,
    public,
    running,
)

SURROGATE = "\\ud800"
"""A lone UTF-16 surrogate as JSON spells it (six characters of JSON text)."""

EVERYONE = {"everyone": True}


async def scrape(port: int, name: str, **labels: str) -> float:
    """One sample's value from GET /metrics on the control listener."""
    status, _, body = await http_request(port, "/metrics")
    assert status == 200
    found = [s.value for family in parse_prometheus(body.decode()) for s in family.samples
             if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{len(found)} samples {name}{labels}"
    return found[0]


async def healthz(server: Any) -> dict[str, Any]:
    _, _, body = await http_request(server.control.port, "/healthz")
    return json.loads(body)


def lines(path: Path) -> list[dict[str, Any]]:
    """The audit file, every line checked strictly (tests/stress/strict.py)."""
    return read_audit_file(path) if path.exists() else []


# 1. A lone surrogate: a bad_request, validated once, where it entered


@pytest.mark.parametrize("frame, place", [
    ('{"id": "%s", "op": "stats"}' % SURROGATE, "'id'"),
    ('{"id": 1, "op": "get", "args": {"id": "%s"}}' % SURROGATE, "'args.id'"),
    ('{"id": 1, "op": "disconnect", "args": {"selector": {"everyone": true}, '
     '"reason": "bye%s"}}' % SURROGATE, "'args.reason'"),
    ('{"id": 1, "op": "send", "args": {"selector": {"everyone": true}, '
     '"text": "%s"}}' % SURROGATE, "'args.text'"),
    ('{"id": 1, "op": "send", "args": {"selector": {"user": "%s"}, "text": "x"}}' % SURROGATE,
     "'args.selector.user'"),
    ('{"id": 1, "op": "kick", "args": {"selector": {"ids": ["a", "%s"]}}}' % SURROGATE,
     "'args.selector.ids[1]'"),
    ('{"id": 1, "op": "list", "args": {"cursor": "%s"}}' % SURROGATE, "'args.cursor'"),
    ('{"id": 1, "op": "list", "args": {"%s": 1}}' % SURROGATE, "a key of 'args'"),
    ('{"id": 1, "op": "%s"}' % SURROGATE, "'op'"),
])
@pytest.mark.parametrize("token", [TOKEN, READ_ONLY_TOKEN])
async def test_a_lone_surrogate_anywhere_is_a_bad_request_naming_where(frame, place, token):
    """From either token, a lone surrogate in any string is bad_request with a
    message that says where it was; the id is echoed unless it is the culprit;
    the connection stays open and answers the next request."""
    async with running() as server, control(server, token) as ctl:
        reply = await ctl.raw(frame)
        assert (reply.ok, reply.error_code) == (False, "bad_request")
        assert reply.error_message.startswith(f"{place} is not Unicode text")
        assert "surrogate" in reply.error_message
        assert reply.id == (None if place == "'id'" else 1)
        assert (await ctl.ok("hello"))["role"] in ("operator", "read_only")


def test_the_wire_checks_every_string_once_when_it_parses():
    """parse_request refuses a lone surrogate (raising what the frame held, for the
    audit log); a surrogate pair is a character and passes; the encoders refuse
    a frame that could not travel, instead of half-sending it."""
    with pytest.raises(ProtocolViolation) as info:
        wire.parse_request('{"id": 7, "op": "send", "args": {"selector": {"everyone": true}, '
                           '"text": "%s"}}' % SURROGATE)
    assert (info.value.request_id, info.value.op) == (7, "send")
    assert info.value.raw_args["text"] == "\ud800"
    pair = wire.parse_request('{"id": 1, "op": "get", "args": {"id": "\\ud83d\\ude00"}}')
    assert pair.args["id"] == "😀"
    with pytest.raises(ValueError, match="not Unicode text"):
        wire.encode_reply(1, {"user": "\ud800"})
    with pytest.raises(ValueError):
        wire.encode_event("stats", {"rate": float("inf")}, 0.0)
    with pytest.raises(ProtocolViolation, match="finite number"):
        wire.parse_request('{"id": 1, "op": "subscribe", "args": {"stats_interval": 1e999}}')


HOSTILE_FRAMES = [
    '{"id": "%s", "op": "send", "args": {"selector": {"everyone": true}, "text": "x"}}'
    % SURROGATE,
    '{"id": 1, "op": "get", "args": {"id": "%s"}}' % SURROGATE,
    '{"id": 2, "op": "disconnect", "args": {"selector": {"user": "nobody"}, "reason": "%s"}}'
    % SURROGATE,
    '{"id": 3, "op": "send", "args": {"selector": {"user": "nobody"}, "text": "%s"}}'
    % SURROGATE,
    '{"id": 4, "op": "send", "args": {"selector": {"user": "%s"}, "text": "x"}}' % SURROGATE,
    '{"id": 5, "op": "shutdown", "args": {"mode": "%s"}}' % SURROGATE,
    '{"id": 6, "op": "shutdown", "args": {"mode": "keep_alive", "deadline": 1e999}}',
    b'{"id": 7, "op": "send", "args": {"selector": {"everyone": true}, "text": "x"}}',
    '{"id": 8, "op": "send", "args": {"selector": {"user": %s}, "text": "x"}}'
    % ("[" * 300 + "]" * 300),
]


@pytest.mark.parametrize("token", [TOKEN, READ_ONLY_TOKEN])
async def test_nothing_a_client_sends_ends_another_operators_stream(tmp_path, token):
    """Two operators watch the event stream while a third sends every frame that
    used to break it; both streams survive and still carry the next action."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server, \
            control(server) as watcher, control(server, READ_ONLY_TOKEN) as viewer:
        for ctl in (watcher, viewer):
            await ctl.ok("subscribe", stats_interval=60)
        async with control(server, token) as hostile:
            for frame in HOSTILE_FRAMES:
                reply = await hostile.raw(frame)
                assert not reply.ok and reply.error_code != "internal_error", reply
        async with control(server) as ctl:
            await ctl.ok("send", selector={"user": "after-the-attack"}, text="hi")
        for ctl in (watcher, viewer):
            action = await ctl.event(lambda e: e.kind == EventKind.OPERATOR_ACTION and e.data[
                "args"].get("selector") == {"user": "after-the-attack"})
            assert action.data["result"]["recipients"] == 0
            assert (await ctl.ok("hello"))["node"] == server.hub.node
    # One line per frame but the get (a read), and one for the send after.
    assert len(lines(audit)) == len(HOSTILE_FRAMES) - 1 + 1


async def test_an_event_that_cannot_be_encoded_is_published_to_no_one(caplog):
    """The application names a user with a lone surrogate: its connection_opened
    cannot be encoded, so no subscriber gets it (it is logged), every subscriber
    gets the next event, and a reply that would carry the name is an
    internal_error on a connection that stays open."""
    def identify(connection: Any) -> str:
        user = connection.request.path.partition("user=")[2]
        return "bad\ud800" if user == "bad" else user

    config = ControlConfig(port=0, token=TOKEN, read_only_token=READ_ONLY_TOKEN)
    async with serve(app, "127.0.0.1", 0, identify=identify, control=config) as server, \
            control(server) as first, control(server, READ_ONLY_TOKEN) as second:
        for ctl in (first, second):
            await ctl.ok("subscribe", stats_interval=60)
        async with public(server, "/?user=bad"):
            await wait_for(lambda: len(server.hub.registry) == 1)
            [bad_id] = [record.id for record in server.hub.registry]
            async with public(server, "/?user=good"):
                for ctl in (first, second):
                    opened = await ctl.event(lambda e: e.kind == EventKind.CONNECTION_OPENED)
                    assert opened.data["user"] == "good"
                assert await first.error("get", id=bad_id) == "internal_error"
                assert (await first.ok("get", id=opened.data["id"]))["user"] == "good"
    assert "connection_opened event not published" in caplog.text


async def test_one_subscriber_going_away_costs_the_others_nothing():
    """A subscriber whose connection breaks mid-stream ends its own pump only."""
    async with running() as server, control(server) as staying:
        await staying.ok("subscribe", stats_interval=60)
        async with control(server) as leaving:
            await leaving.ok("subscribe", stats_interval=60)
            leaving.ws.transport.abort()
            async with public(server, "/?user=ann"):
                opened = await staying.event(lambda e: e.kind == EventKind.CONNECTION_OPENED)
        assert opened.data["user"] == "ann"
        assert (await staying.ok("hello"))["role"] == "operator"


# 2. Fail closed; reopen; visible state


async def test_a_mutating_request_whose_line_cannot_be_written_is_not_carried_out():
    """With an audit log that takes no byte (/dev/full), send, disconnect and
    shutdown are refused with audit_failed and do nothing: the client receives
    nothing and stays connected, the server keeps serving. Reads still work,
    a request refused for another reason keeps its own error, every operator
    sees the refusal, and stats, /healthz and the metrics say why."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    async with running(audit_log="/dev/full") as server, \
            public(server, "/?user=ann") as client, \
            control(server) as ctl, control(server, READ_ONLY_TOKEN) as viewer:
        await viewer.ok("subscribe", stats_interval=60)
        await wait_for(lambda: len(server.hub.registry) == 1)
        assert await ctl.error("send", selector=EVERYONE, text="never") == "audit_failed"
        assert await ctl.error("disconnect", selector=EVERYONE) == "audit_failed"
        assert await ctl.error("shutdown", mode="graceful") == "audit_failed"
        reply = await ctl.reply("send", selector=EVERYONE, text="never")
        assert isinstance(reply.exception(), AuditFailed)
        assert "No space left on device" in reply.error_message
        assert "not carried out" in reply.error_message
        assert await viewer.error("send", selector=EVERYONE, text="x") == "forbidden"

        await client.send("still here")
        assert await client.recv() == "still here"  # no "never" before the echo
        assert server.hub.state == "serving"
        action = await viewer.event(lambda e: e.kind == EventKind.OPERATOR_ACTION)
        assert (action.data["decision"], action.data["error"]["code"]) == (
            "refused", "audit_failed")

        audit = (await ctl.ok("stats"))["audit"]
        assert audit["state"] == AuditState.FAILING and audit["path"] == "/dev/full"
        assert (audit["entries_written"], audit["entries_failed"]) == (0, 5)
        assert audit["last_error"] == "No space left on device"
        health = await healthz(server)
        assert health["state"] == "serving" and health["audit"]["state"] == "failing"
        assert "path" not in health["audit"]  # /healthz needs no token
        port = server.control.port
        assert await scrape(port, "wsconsole_audit_log_state", state="failing") == 1
        assert await scrape(port, "wsconsole_audit_log_state", state="ok") == 0
        assert await scrape(port, "wsconsole_audit_entries_total", outcome="failed") == 5
        assert await scrape(port, "wsconsole_control_requests_total", operation="send",
                            outcome="audit_failed") == 2


async def test_a_failing_audit_log_recovers_once_it_can_be_written(tmp_path):
    """An audit file that cannot be reopened (its directory is gone) refuses
    mutating requests; once the directory is back, the next line is written and
    the state is ok again."""
    folder = tmp_path / "logs"
    folder.mkdir()
    audit = folder / "audit.log"
    async with running(audit_log=str(audit)) as server, control(server) as ctl:
        await ctl.ok("send", selector=EVERYONE, text="one")
        shutil.rmtree(folder)
        assert await ctl.error("send", selector=EVERYONE, text="lost") == "audit_failed"
        assert (await ctl.ok("stats"))["audit"]["state"] == "failing"
        folder.mkdir()
        await ctl.ok("send", selector=EVERYONE, text="two")
        status = (await ctl.ok("stats"))["audit"]
        assert (status["state"], status["entries_written"], status["entries_failed"]) == (
            "ok", 2, 1)
        assert status["last_error"] is None
        assert (await healthz(server))["audit"]["state"] == "ok"
    assert [e["args"]["text"] for e in lines(audit)] == ["two"]


async def test_a_renamed_audit_file_is_reopened_at_its_path(tmp_path):
    """logrotate's default (rename, then create): the next line goes to a new
    file at the configured path, mode 0600, and the rotated one keeps the old."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server, control(server) as ctl:
        await ctl.ok("send", selector=EVERYONE, text="before")
        audit.rename(tmp_path / "audit.log.1")
        await ctl.ok("send", selector=EVERYONE, text="after")
        assert (await ctl.ok("stats"))["audit"]["reopened"] == 1
    assert [e["args"]["text"] for e in lines(tmp_path / "audit.log.1")] == ["before"]
    assert [e["args"]["text"] for e in lines(audit)] == ["after"]
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600


async def test_a_deleted_audit_file_is_created_again(tmp_path):
    """An audit file deleted under the server is created again by the next line."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server, control(server) as ctl:
        await ctl.ok("send", selector=EVERYONE, text="before")
        audit.unlink()
        await ctl.ok("send", selector=EVERYONE, text="after")
    assert [e["args"]["text"] for e in lines(audit)] == ["after"]


async def test_copytruncate_leaves_whole_lines_from_the_start(tmp_path):
    """logrotate's copytruncate (copy, then truncate in place): the next line
    starts the truncated file, with no hole of NUL bytes before it."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server, control(server) as ctl:
        for text in ("one", "two"):
            await ctl.ok("send", selector=EVERYONE, text=text)
        shutil.copyfile(audit, tmp_path / "audit.log.1")
        os.truncate(audit, 0)
        await ctl.ok("send", selector=EVERYONE, text="three")
        assert (await ctl.ok("stats"))["audit"]["reopened"] == 0
    assert [e["args"]["text"] for e in lines(tmp_path / "audit.log.1")] == ["one", "two"]
    assert b"\0" not in audit.read_bytes()
    assert [e["args"]["text"] for e in lines(audit)] == ["three"]


async def test_an_embedder_reopens_the_audit_log_on_demand(tmp_path):
    """ControlListener.reopen_audit_log() opens the file at its path at once
    (what SIGHUP does in `wsconsole serve`), before any line is due."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server:
        audit.rename(tmp_path / "audit.log.1")
        server.control.reopen_audit_log()
        assert audit.exists() and audit.read_bytes() == b""
        assert server.control.audit.status().reopened == 1


async def test_stats_and_healthz_show_a_healthy_audit_log(tmp_path):
    """stats names the file and counts lines; /healthz shows the state without the
    path; without an audit file, stats says disabled and /healthz says nothing."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server, control(server) as ctl:
        await ctl.ok("send", selector=EVERYONE, text="x")
        await ctl.error("send", selector={}, text="x")
        status = (await ctl.ok("stats"))["audit"]
        assert status == {"state": "ok", "path": str(audit), "entries_written": 2,
                          "entries_failed": 0, "last_error": None, "last_error_time": None,
                          "reopened": 0}
        assert (await healthz(server))["audit"] == {
            key: value for key, value in status.items() if key != "path"}
        assert await scrape(server.control.port, "wsconsole_audit_entries_total",
                            outcome="written") == 2
    async with running() as server, control(server) as ctl:
        assert (await ctl.ok("stats"))["audit"]["state"] == "disabled"
        assert "audit" not in await healthz(server)
        assert await scrape(server.control.port, "wsconsole_audit_log_state",
                            state="disabled") == 1


WSCONSOLE = [sys.executable, "-m", "wsconsole.console.cli"]


async def start_serve(tmp_path: Path, audit: Path, **popen: Any) -> tuple[Any, str]:
    """`wsconsole serve` with an audit log: (process, control URL)."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    process = await asyncio.create_subprocess_exec(
        *WSCONSOLE, "serve", "--port", "0", "--control-port", "0",
        "--token-file", str(token_file), "--audit-log", str(audit),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **popen)
    async with asyncio.timeout(TIMEOUT * 2):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, (await process.stderr.read()).decode()
            match = re.search(r"control plane on (ws://\S+)", line)
            if match:
                return process, match.group(1)


async def stop_serve(process: Any) -> int:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(TIMEOUT * 2):
        await process.communicate()
    return process.returncode


async def test_sighup_reopens_the_audit_log_of_wsconsole_serve(tmp_path):
    """After logrotate renames the file, `kill -HUP` makes `wsconsole serve`
    create it again at once; the server keeps running and exits 0 on SIGTERM."""
    audit = tmp_path / "audit.log"
    process, _ = await start_serve(tmp_path, audit)
    try:
        await wait_for(audit.exists, TIMEOUT * 2)
        audit.rename(tmp_path / "audit.log.1")
        process.send_signal(signal.SIGHUP)
        await wait_for(audit.exists, TIMEOUT * 2)
        assert process.returncode is None
    finally:
        code = await stop_serve(process)
    assert code == 0


async def test_a_full_disk_never_leaves_a_partial_line(tmp_path):
    """A file that can grow only so far (RLIMIT_FSIZE, as a full disk): the write
    that crosses the limit leaves no partial line, the request is refused, and
    every send that was carried out has its line, no more, no less."""
    audit = tmp_path / "audit.log"
    limit = 2500

    def limit_file_size() -> None:  # in the child; Python ignores SIGXFSZ: writes fail
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process, url = await start_serve(tmp_path, audit, preexec_fn=limit_file_size)
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            ctl = Control(ws)
            outcomes = [(await ctl.reply("send", selector=EVERYONE, text=f"{i:03} " + "x" * i))
                        for i in range(40)]
            status = (await ctl.ok("stats"))["audit"]
    finally:
        await stop_serve(process)
    carried_out = [reply for reply in outcomes if reply.ok]
    refused = [reply for reply in outcomes if not reply.ok]
    assert carried_out and refused
    assert {reply.error_code for reply in refused} == {"audit_failed"}
    entries = lines(audit)  # strict: whole lines only, the file ends with "\n"
    assert len(entries) == len(carried_out) == status["entries_written"]
    assert status["entries_failed"] == len(refused)
    assert status["last_error"] == "File too large"
    assert audit.stat().st_size <= limit


# 3. Every request that names a mutating operation is one line


ONE_LINE_EACH = [
    ('{"op": "send", "args": {"selector": {"everyone": true}, "text": "x"}}', "bad_request"),
    ('{"id": 1.5, "op": "send", "args": {"selector": {"everyone": true}, "text": "x"}}',
     "bad_request"),
    ('{"id": true, "op": "disconnect", "args": {"selector": {"everyone": true}}}',
     "bad_request"),
    ('{"id": null, "op": "shutdown", "args": {"mode": "graceful"}}', "bad_request"),
    (b'{"id": 1, "op": "send", "args": {"selector": {"everyone": true}, "text": "x"}}',
     "bad_json"),
    (b'{"op": "disconnect"}', "bad_json"),
    ('{"id": 2, "op": "send", "args": {"selector": {"everyone": true}}}', "bad_request"),
    ('{"id": 3, "op": "send", "args": {"selector": {"everyone": true}, "text": 5}}',
     "bad_request"),
    ('{"id": 4, "op": "send", "args": "everyone"}', "bad_request"),
    ('{"id": 5, "op": "send", "args": {"selector": {}, "text": "x"}}', "bad_selector"),
    ('{"id": 6, "op": "disconnect", "args": {"selector": {"everyone": true}, "code": 1005}}',
     "bad_request"),
    ('{"id": 7, "op": "disconnect", "args": {"selector": {"everyone": true}}, "x": 1}',
     "bad_request"),
    ('{"id": 8, "op": "shutdown", "args": {"mode": "now"}}', "bad_request"),
    ('{"id": 9, "op": "shutdown", "args": {"mode": "keep_alive", "deadline": 1e999}}',
     "bad_request"),
    ('{"id": 10, "op": "send", "args": {"selector": {"everyone": true}, "text": "%s"}}'
     % SURROGATE, "bad_request"),
]
"""Refused requests that name a mutating operation, with the code of their refusal."""

NO_LINE = [
    '{"id": 20, "op": "stats"}',
    '{"id": 21, "op": "launch"}',
    '{"id": 22, "op": "SEND"}',
    '{"id": 23, "op": "send", "args": {"text": NaN}}',  # not JSON: it names nothing
    "not json",
    b"\xff\xfe",
    '["send"]',
]
"""Frames that name no mutating operation (not JSON, no such op, a read)."""


async def test_every_request_naming_a_mutating_operation_is_exactly_one_line(tmp_path):
    """Refused (no id, float id, binary frame, bad arguments, forbidden role) or
    accepted, each request that names send, disconnect or shutdown is one line
    saying what was decided and why; reads and frames naming nothing are not."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server, \
            control(server) as ctl, control(server, READ_ONLY_TOKEN) as viewer:
        for frame, code in ONE_LINE_EACH:
            assert (await ctl.raw(frame)).error_code == code, frame
        for frame in NO_LINE:
            await ctl.raw(frame)
        assert await viewer.error("send", selector=EVERYONE, text="x") == "forbidden"
        assert await viewer.error("shutdown", mode="graceful") == "forbidden"
        await ctl.ok("send", selector=EVERYONE, text="accepted")
        await ctl.ok("disconnect", selector={"user": "nobody"})
        await ctl.ok("send", selector=EVERYONE, text="dry", dry_run=True)
    entries = lines(audit)
    refused, accepted = entries[:len(ONE_LINE_EACH) + 2], entries[len(ONE_LINE_EACH) + 2:]
    assert [(e["decision"], e["error"]["code"]) for e in refused] == [
        ("refused", code) for _, code in ONE_LINE_EACH] + [("refused", "forbidden")] * 2
    assert [e["op"] for e in refused[:6]] == [
        "send", "send", "disconnect", "shutdown", "send", "disconnect"]
    assert [e["role"] for e in refused[-2:]] == ["read_only", "read_only"]
    assert [(e["op"], e["decision"]) for e in accepted] == [
        ("send", "accepted"), ("disconnect", "accepted"), ("send", "accepted")]
    assert all("error" not in e and "result" not in e for e in accepted)


async def test_every_mutating_operation_is_logged_and_its_outcome_published(tmp_path):
    """Each send, disconnect and shutdown is one JSON line, written before it ran;
    its outcome (delivered, counts) is published in the operator_action event."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server:
        assert any(str(audit) in line for line in server.control.describe())
        async with public(server, "/?user=ann") as client, \
                control(server, READ_ONLY_TOKEN) as watcher, control(server) as ctl:
            await watcher.ok("subscribe", stats_interval=60)
            await ctl.ok("list")
            await ctl.ok("send", selector={"user": "ann"}, text="x" * 500)
            assert await client.recv() == "x" * 500
            sent = await watcher.event(lambda e: e.kind == EventKind.OPERATOR_ACTION)
            await ctl.ok("disconnect", selector={"user": "nobody"}, code=4000, reason="r")
            disconnected = await watcher.event(lambda e: e.kind == EventKind.OPERATOR_ACTION)
            await ctl.ok("shutdown", mode="keep_alive", deadline=30)
            client_address = ctl.ws.local_address
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600
    text = audit.read_text()
    assert TOKEN not in text and READ_ONLY_TOKEN not in text
    send, disconnect, shutdown = lines(audit)
    assert send["time"].endswith("+00:00") and "T" in send["time"]
    assert (send["role"], send["op"], send["decision"]) == ("operator", "send", "accepted")
    assert send["client"] == f"{client_address[0]}:{client_address[1]}"
    assert send["args"]["selector"] == {"user": "ann"}
    assert send["args"]["text_length"] == 500
    assert len(send["args"]["text"]) == AUDIT_TEXT_LIMIT + 1  # clipped, with "…"
    node = send["node"]  # the node that received the request, and the one that acted
    assert sent.data == {**send, "result": {
        "recipients": 1, "delivered": 1, "skipped": 0, "dry_run": False,
        "per_node": {node: {"recipients": 1, "delivered": 1, "skipped": 0}}}}
    assert disconnect["args"] == {"selector": {"user": "nobody"}, "code": 4000, "reason": "r"}
    assert disconnected.data["result"] == {"count": 0, "per_node": {node: {"count": 0}}}
    assert shutdown["args"]["mode"] == "keep_alive" and shutdown["args"]["deadline"] == 30


async def test_the_audit_log_is_appended_across_restarts(tmp_path):
    """A restarted server appends to the audit log instead of truncating it."""
    audit = tmp_path / "audit.log"
    for _ in range(2):
        async with running(audit_log=str(audit)) as server, control(server) as ctl:
            await ctl.ok("send", selector=EVERYONE, text="hi")
    assert len(lines(audit)) == 2


class NodeAway(LocalFleet):
    """This process's hub, plus a node that never answers: what a cluster reports."""

    MISSING = {"web-2": "no reply before the deadline"}

    async def send(self, selector, message, **kwargs):
        answer = await super().send(selector, message, **kwargs)
        return Answer(result=answer.result, missing=self.MISSING)


async def test_a_partial_answer_reaches_the_operator_and_the_operator_action(tmp_path):
    """With a fleet that names a node as missing, the operator's reply and the
    published outcome carry what was gathered plus that node; the audit line
    records the request; auth is unchanged."""
    audit = tmp_path / "audit.log"
    async with serve(app, "127.0.0.1", 0) as server:
        config = ControlConfig(port=0, token=TOKEN, read_only_token=READ_ONLY_TOKEN,
                               audit_log=str(audit))
        listener = ControlListener(server.hub, config, NodeAway(server.hub))
        await listener.start()
        try:
            async with public(server, "/?user=ann") as client, connect(
                    listener.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
                await wait_for(lambda: len(server.hub.registry) == 1)
                ctl = Control(ws)
                await ctl.ok("subscribe", stats_interval=60)
                result = await ctl.ok("send", selector={"user": "ann"}, text="hi")
                assert await client.recv() == "hi"
                assert result["delivered"] == 1 and result["missing"] == NodeAway.MISSING
                action = await ctl.event(lambda e: e.kind == EventKind.OPERATOR_ACTION)
                assert action.data["result"]["missing"] == NodeAway.MISSING
                assert "missing" not in await ctl.ok("stats")
            async with connect(listener.url, additional_headers={
                    "Authorization": f"Bearer {READ_ONLY_TOKEN}"}) as ws:
                assert await Control(ws).error("send", selector=EVERYONE, text="x") == "forbidden"
        finally:
            await listener.stop()
    sent, refused = lines(audit)
    assert sent["decision"] == "accepted" and sent["args"]["selector"] == {"user": "ann"}
    assert refused["error"]["code"] == "forbidden"


# 4. Every line is valid, flat, bounded JSON


async def test_audit_lines_are_flat_bounded_strict_json_whatever_the_request_holds(tmp_path):
    """What is copied from a request is scalars (and a selector's first ids),
    clipped: no Infinity, no 300-deep list, no megabyte, no lone surrogate."""
    audit = tmp_path / "audit.log"
    deep = "[" * 300 + "]" * 300
    ids = json.dumps([f"id{i}" for i in range(20_000)])
    frames = [
        '{"id": 1, "op": "shutdown", "args": {"mode": "keep_alive", "deadline": 1e999}}',
        '{"id": 2, "op": "send", "args": {"selector": {"user": %s}, "text": "x"}}' % deep,
        '{"id": 3, "op": "send", "args": {"selector": {"ids": %s}, "text": %s, '
        '"dry_run": "yes"}}' % (ids, json.dumps("y" * 500_000)),
        '{"id": 4, "op": "disconnect", "args": {"selector": {"topic": "t"}, "reason": "%s", '
        '"code": %s}}' % (SURROGATE * 3, "9" * 400),
        '{"id": 5, "op": "send", "args": {"selector": {"everyone": %s}, "text": {"a": %s}, '
        '"%s": 1}}' % (deep, deep, "k" * 100_000),
        '{"id": 6, "op": "send", "args": [%s]}' % deep,
        '{"id": 7, "op": "send", "args": {"selector": {"ids": [%s, %s]}, "binary": 1e999}}' % (
            deep, json.dumps("\u0000\u001f\u2028" * 1000)),
    ]
    async with running(audit_log=str(audit)) as server, control(server) as ctl:
        for frame in frames:
            assert not (await ctl.raw(frame)).ok
    shutdown, deep_user, many_ids, surrogates, hostile, not_object, ids_deep = lines(audit)
    assert shutdown["args"]["deadline"] == "<non-finite number>"
    assert deep_user["args"]["selector"] == {"user": "<list of 1>"}
    selector = many_ids["args"]["selector"]
    assert len(selector["ids"]) == AUDIT_IDS_LIMIT and selector["ids_total"] == 20_000
    assert len(many_ids["args"]["text"]) == AUDIT_TEXT_LIMIT + 1
    assert many_ids["args"]["text_length"] == 500_000
    assert surrogates["args"]["reason"] == "\\ud800" * 3  # spelled out, valid UTF-8
    assert surrogates["args"]["code"] == "<integer too large>"
    assert hostile["args"] == {"selector": {"everyone": "<list of 1>"},
                               "text": "<object of 1 fields>"}
    assert len(hostile["error"]["message"]) < 400  # the unknown name, clipped
    assert not_object["args"] == {"invalid": "<list of 1>"}
    assert ids_deep["args"]["selector"]["ids"][0] == "<list of 1>"
    for entry in lines(audit):
        assert depth(entry) <= AUDIT_MAX_DEPTH
        assert len(json.dumps(entry, ensure_ascii=False).encode()) < 8 * 1024


async def test_a_fuzz_run_leaves_every_reply_and_line_strict_json(tmp_path):
    """The stress fuzzer's checks, on a few hundred cases: the server answers
    every request with strict JSON, the watchers' streams survive, and the audit
    file has one strict, flat line per request that named a mutating operation."""
    audit = tmp_path / "audit.log"
    async with running(audit_log=str(audit)) as server:
        figures = await run_fuzz(server.control.url, TOKEN, READ_ONLY_TOKEN, cases=400,
                                 seed=7, audit_path=str(audit), connections=4, rate=5000)
        assert server.hub.state == "serving"
    assert not figures.failures, figures.report()
    assert figures.audit_lines == figures.audit_expected > 100
    for line in audit.read_bytes().splitlines():
        strict_loads(line)

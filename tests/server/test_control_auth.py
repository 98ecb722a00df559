"""The control listener's gate: tokens, roles, Origin, bind rules, TLS, /metrics and /healthz."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import stat
import subprocess

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import TIMEOUT
from wsconsole.server import ConfigError, serve
from wsconsole.server.config import ControlConfig
from wsconsole.server.control import is_loopback

from .control_helpers import READ_ONLY_TOKEN, TOKEN, app, control, http_request, loads, running


async def refused_status(url: str, headers: dict[str, str] | None = None, **kwargs) -> tuple[int, dict]:
    """The HTTP status and headers of a refused control handshake."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=headers or {}, open_timeout=TIMEOUT,
                           **kwargs):
            pass
    response = info.value.response
    return response.status_code, response.headers


# Tokens in the handshake


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer t\u00e9st\u00e9"},
        {"Authorization": "Bearer " + "a" * 5000},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": TOKEN},
    ],
    ids=["missing", "wrong", "longer", "shorter", "non-ascii", "oversized", "basic",
         "no-token", "empty-token", "no-scheme"],
)
async def test_bad_tokens_get_401_with_www_authenticate(headers):
    """A missing, wrong, non-ASCII, oversized or malformed token gets 401 with WWW-Authenticate: Bearer."""
    async with running() as server:
        status, response_headers = await refused_status(server.control.url, headers)
        assert status == 401
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
        assert server.hub.opened_total == 0


async def test_two_authorization_headers_get_401():
    """A request with two Authorization headers is refused, even if one is right."""
    async with running() as server:
        headers = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer x")]
        status, _ = await refused_status(server.control.url, headers)  # type: ignore[arg-type]
        assert status == 401


async def test_bearer_scheme_is_case_insensitive():
    """'bearer TOKEN' is accepted like 'Bearer TOKEN' (RFC 7235 schemes are case-insensitive)."""
    async with running() as server:
        async with connect(server.control.url,
                           additional_headers={"Authorization": f"bearer {TOKEN}"}) as ws:
            await ws.send('{"id": 1, "op": "hello"}')
            assert '"role":"operator"' in await ws.recv()


async def test_origin_is_refused_with_403():
    """A handshake carrying an Origin header is refused, even with the right token."""
    async with running() as server:
        status, _ = await refused_status(server.control.url,
                                         {"Authorization": f"Bearer {TOKEN}"},
                                         origin="http://evil.example")
        assert status == 403


async def test_non_get_on_the_control_path_is_refused():
    """A POST with a valid token is not a handshake: 405."""
    async with running() as server:
        status, headers, _ = await http_request(
            server.control.port, "/", "POST", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 405


async def test_secrets_never_reach_the_logs(caplog):
    """Neither the tokens nor Authorization values appear in any log record."""
    with caplog.at_level(logging.DEBUG):
        async with running() as server:
            await refused_status(server.control.url, {"Authorization": "Bearer guess-123"})
            async with control(server) as ctl:
                await ctl.ok("hello")
                await ctl.error("shutdown", mode="sideways")
            async with control(server, READ_ONLY_TOKEN) as ctl:
                await ctl.error("send", selector={"everyone": True}, text="x")
            lines = server.control.describe()
    # The test's own client logs what it sends; only the server's side counts.
    server_side = "\n".join(record.getMessage() for record in caplog.records
                            if not record.name.startswith("websockets.client"))
    assert "Authorization" in server_side  # DEBUG header lines were logged, redacted
    for secret in (TOKEN, READ_ONLY_TOKEN, "guess-123"):
        assert secret not in server_side
        assert all(secret not in line for line in lines)


# Token files


async def test_token_file_is_created_0600_and_reused(tmp_path):
    """A missing token file is created (0600, parent 0700) and the same token is used on restart."""
    token_file = tmp_path / "state" / "wsconsole" / "token"
    config = dict(port=0, token_file=str(token_file))
    async with serve(app, "127.0.0.1", 0, control=ControlConfig(**config)) as server:
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(token_file.parent).st_mode) == 0o700
        token = token_file.read_text().strip()
        assert len(token) >= 40
        assert any("created" in line and str(token_file) in line
                   for line in server.control.describe())
        async with control(server, token) as ctl:
            assert (await ctl.ok("hello"))["role"] == "operator"
    async with serve(app, "127.0.0.1", 0, control=ControlConfig(**config)) as server:
        assert token_file.read_text().strip() == token
        assert any("read from" in line for line in server.control.describe())
        async with control(server, token) as ctl:
            assert (await ctl.ok("hello"))["role"] == "operator"


async def test_read_only_token_file_gives_the_read_only_role(tmp_path):
    """A read-only token file is created like the operator's and its token is read-only."""
    ro_file = tmp_path / "ro-token"
    control_config = ControlConfig(port=0, token=TOKEN, read_only_token_file=str(ro_file))
    async with serve(app, "127.0.0.1", 0, control=control_config) as server:
        assert stat.S_IMODE(os.stat(ro_file).st_mode) == 0o600
        async with control(server, ro_file.read_text().strip()) as ctl:
            assert (await ctl.ok("hello"))["role"] == "read_only"


async def test_no_token_refuses_to_start():
    """Without any token the control listener, and so serve(), refuses to start."""
    with pytest.raises(ConfigError, match="needs a token"):
        async with serve(app, "127.0.0.1", 0, control=ControlConfig(port=0)):
            pass


async def test_empty_token_file_refuses_to_start(tmp_path):
    """An empty token file is a configuration error, not an open door."""
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        async with serve(app, "127.0.0.1", 0,
                         control=ControlConfig(port=0, token_file=str(token_file))):
            pass


async def test_identical_tokens_refuse_to_start():
    """The same token for both roles would make roles meaningless: refused."""
    with pytest.raises(ConfigError, match="differ"):
        async with serve(app, "127.0.0.1", 0,
                         control=ControlConfig(port=0, token=TOKEN, read_only_token=TOKEN)):
            pass


# Bind rules and TLS


def test_loopback_detection():
    """localhost, 127.0.0.0/8 and ::1 are loopback; 0.0.0.0, '' and host names are not."""
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("127.1.2.3")
    assert is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback(None)
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")


async def test_non_loopback_bind_without_tls_is_refused():
    """Binding the control listener to 0.0.0.0 without TLS or allow_insecure refuses to start."""
    with pytest.raises(ConfigError, match="without TLS"):
        async with serve(app, "127.0.0.1", 0,
                         control=ControlConfig(host="0.0.0.0", port=0, token=TOKEN)):
            pass


async def test_non_loopback_bind_with_allow_insecure_starts_and_metrics_need_a_token():
    """With allow_insecure it starts, says so, and /metrics then needs the bearer token."""
    config = ControlConfig(host="0.0.0.0", port=0, token=TOKEN, allow_insecure=True)
    async with serve(app, "127.0.0.1", 0, control=config) as server:
        assert any("INSECURE" in line for line in server.control.describe())
        port = server.control.port
        status, headers, _ = await http_request(port, "/metrics")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        status, _, body = await http_request(port, "/metrics",
                                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and b"wsconsole_" in body
        # The health check stays open to load balancers.
        status, _, _ = await http_request(port, "/healthz")
        assert status == 200
        async with connect(f"ws://127.0.0.1:{port}",
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send('{"id": 1, "op": "hello"}')
            assert '"ok":true' in await ws.recv()


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 (cert path, key path)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


async def test_non_loopback_bind_with_tls_serves_wss(certificate):
    """With a certificate and key, a non-loopback control listener starts and speaks TLS."""
    cert, key = certificate
    config = ControlConfig(host="0.0.0.0", port=0, token=TOKEN, cert=cert, key=key)
    async with serve(app, "127.0.0.1", 0, control=config) as server:
        assert server.control.url.startswith("wss://")
        context = ssl.create_default_context(cafile=cert)
        async with connect(f"wss://127.0.0.1:{server.control.port}", ssl=context,
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send('{"id": 1, "op": "hello"}')
            assert '"role":"operator"' in await ws.recv()


async def test_a_certificate_without_a_key_is_refused(certificate):
    """TLS needs both halves: a certificate alone refuses to start."""
    cert, _ = certificate
    with pytest.raises(ConfigError, match="both"):
        async with serve(app, "127.0.0.1", 0,
                         control=ControlConfig(port=0, token=TOKEN, cert=cert)):
            pass


async def test_unix_socket_listener(tmp_path):
    """The control listener can listen on a Unix socket instead of TCP."""
    path = str(tmp_path / "control.sock")
    async with serve(app, "127.0.0.1", 0,
                     control=ControlConfig(unix_path=path, token=TOKEN)) as server:
        assert server.control.port is None and path in server.control.url
        from websockets.asyncio.client import unix_connect

        async with unix_connect(path, "ws://localhost/",
                                additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send('{"id": 1, "op": "hello"}')
            assert '"role":"operator"' in await ws.recv()


# /metrics and /healthz


async def test_metrics_on_loopback_need_no_token():
    """On loopback, GET /metrics answers the Prometheus text format without a token."""
    async with running() as server:
        status, headers, body = await http_request(server.control.port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b"wsconsole_control_requests_total" in body


async def test_metrics_and_health_refuse_other_methods():
    """POST /metrics and DELETE /healthz get 405 with Allow: GET, HEAD."""
    async with running() as server:
        for path, method in (("/metrics", "POST"), ("/healthz", "DELETE")):
            status, headers, _ = await http_request(server.control.port, path, method)
            assert status == 405 and headers["allow"] == "GET, HEAD"


async def test_head_answers_headers_without_a_body():
    """HEAD /healthz has the GET's status and Content-Length but no body."""
    async with running() as server:
        status, headers, body = await http_request(server.control.port, "/healthz", "HEAD")
    assert status == 200 and int(headers["content-length"]) > 0 and body == b""


async def test_healthz_is_503_while_draining():
    """GET /healthz answers 200 and the state while serving, 503 while draining."""
    async with running() as server:
        status, _, body = await http_request(server.control.port, "/healthz")
        assert status == 200 and loads(body)["state"] == "serving"
        async with connect(f"ws://127.0.0.1:{server.port}/"):
            server.hub.shutdown("keep_alive")
            status, _, body = await http_request(server.control.port, "/healthz")
            assert status == 503
            assert loads(body) == {"state": "draining", "connections": 1,
                                   "node": server.hub.node}


async def test_origin_is_refused_on_metrics_too():
    """A browser page cannot read /metrics either: Origin gets 403."""
    async with running() as server:
        status, _, _ = await http_request(server.control.port, "/metrics",
                                          headers={"Origin": "http://evil.example"})
    assert status == 403

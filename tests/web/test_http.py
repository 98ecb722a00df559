"""The web console's guard, over plain HTTP and WebSocket clients (no browser):
sessions, cookie flags, Origin and Host, the session cap, the token's way to
the console, the login rate, and the audit.

One control plane and one web console for the module (the rate limit and TLS
get their own web console, which costs no subprocess); a single test opens
the one console (a real ``wsconsole console`` subprocess) that the module
needs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import ssl
import stat
import subprocess
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

pytest.importorskip("textual_serve", reason="the web extra is not installed "
                    "(pip install -e '.[test]' brings textual-serve)")

import aiohttp  # noqa: E402
import pytest_asyncio  # noqa: E402

from wsconsole.console.web.server import COOKIE_NAME, SECURE_COOKIE_NAME, WebConsole  # noqa: E402

from tests.console.live_server import Live, live_server  # noqa: E402
from tests.helpers import TIMEOUT, wait_for  # noqa: E402
from tests.web.web_helpers import (  # noqa: E402
    command_lines,
    drawn_text,
    environment_of,
    http_session,
    login,
    started_web_console,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TTL = 600.0
# Tokens of this module alone: the check that no command line holds a token
# must not see another test's (or another run's) `--token operator-token-for-tests`.
OPERATOR_TOKEN = f"web-operator-{secrets.token_hex(8)}"
READ_ONLY_TOKEN = f"web-read-only-{secrets.token_hex(8)}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live() -> AsyncIterator[Live]:
    async with live_server(token=OPERATOR_TOKEN, read_only_token=READ_ONLY_TOKEN) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(live: Live, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WebConsole]:
    audit = tmp_path_factory.mktemp("web") / "audit.jsonl"
    async with started_web_console(live.url, max_sessions=1, session_ttl=TTL,
                                   login_rate=0, audit_log=str(audit)) as web:
        yield web


def origin(web: WebConsole) -> str:
    return f"http://127.0.0.1:{web.port}"


def audit_lines(web: WebConsole) -> list[dict[str, Any]]:
    assert web.audit.path is not None
    return [json.loads(line) for line in Path(web.audit.path).read_text().splitlines()]


async def test_every_page_and_the_websocket_need_a_session(web: WebConsole) -> None:
    """Without a session, / sends to the login page (a HEAD, such as an uptime
    check's, too), a static file and the WebSocket are refused with 401; the
    login page is served with a strict CSP."""
    async with http_session() as session:
        async with session.get(f"{origin(web)}/", allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/login"
        async with session.head(f"{origin(web)}/", allow_redirects=False) as response:
            assert response.status == 303
        async with session.get(f"{origin(web)}/static/js/textual.js") as response:
            assert response.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"ws://127.0.0.1:{web.port}/ws", origin=origin(web))
        assert refused.value.status == 401
        async with session.get(f"{origin(web)}/login") as response:
            assert response.status == 200
            assert 'name="token"' in await response.text()
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Frame-Options"] == "DENY"
    assert not web.running


async def test_a_refused_token_is_refused_audited_and_never_written(
        web: WebConsole, caplog: pytest.LogCaptureFixture) -> None:
    """A token the control plane refuses gets 401 and no cookie; the audit says
    login_refused, and neither it nor the log holds the token."""
    wrong = "not-the-token-of-anyone-42"
    with caplog.at_level(logging.DEBUG):
        async with http_session() as session:
            response = await login(session, web, wrong)
            assert response.status == 401
            assert "Set-Cookie" not in response.headers
            assert not session.cookie_jar.filter_cookies(origin(web))
    refused = [line for line in audit_lines(web) if line["event"] == "login_refused"]
    assert refused and refused[-1]["reason"] == "refused by the control plane"
    assert wrong not in Path(web.audit.path or "").read_text()
    assert wrong not in caplog.text


async def test_login_sets_a_strict_http_only_expiring_cookie(
        web: WebConsole, caplog: pytest.LogCaptureFixture) -> None:
    """The operator token gives a session cookie: HttpOnly, SameSite=Strict,
    Max-Age the session's lifetime, not Secure over plain HTTP; with it the
    console page is served; logging out forgets it. Neither the token nor the
    cookie is logged or audited, at any level."""
    caplog.set_level(logging.DEBUG)
    async with http_session() as session:
        response = await login(session, web, OPERATOR_TOKEN)
        assert response.status == 303 and response.headers["Location"] == "/"
        cookie = SimpleCookie(response.headers["Set-Cookie"])[COOKIE_NAME]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["max-age"] == str(int(TTL)) and cookie["path"] == "/"
        assert not cookie["secure"]
        async with session.get(f"{origin(web)}/") as page:
            assert page.status == 200
            assert f'data-session-websocket-url="ws://127.0.0.1:{web.port}/ws"' in \
                await page.text()
        async with session.post(f"{origin(web)}/logout", headers={"Origin": origin(web)},
                                allow_redirects=False) as out:
            assert out.status == 303
        async with session.get(f"{origin(web)}/", allow_redirects=False) as page:
            assert page.status == 303
        # The old cookie is worth nothing either, sent by hand.
        async with http_session() as other:
            async with other.get(f"{origin(web)}/", allow_redirects=False,
                                 headers={"Cookie": f"{COOKIE_NAME}={cookie.value}"}) as page:
                assert page.status == 303
    assert [line["role"] for line in audit_lines(web) if line["event"] == "logout"][-1] == \
        "operator"
    for secret in (OPERATOR_TOKEN, cookie.value):
        assert secret not in caplog.text
        assert secret not in Path(web.audit.path or "").read_text()


async def test_a_malformed_login_is_answered_and_logins_go_on(web: WebConsole) -> None:
    """A login form past 16 KiB is answered 413, one that cannot be read (a
    multipart body without parts, bytes that are not UTF-8) 400, one without a
    token 401; none sets a cookie, and the next good login goes ahead."""
    url, headers = f"{origin(web)}/login", {"Origin": origin(web)}
    form = "application/x-www-form-urlencoded"
    async with http_session() as session:
        for body, content_type, status in (
                (b"token=" + b"a" * 20_000, form, 413),
                (b"garbage", "multipart/form-data; boundary=zzz", 400),
                (b"token=\xff\xfe", form, 400),
                (b"other=1", form, 401)):
            async with session.post(url, data=body, allow_redirects=False,
                                    headers={**headers, "Content-Type": content_type}) as response:
                assert response.status == status, (body[:20], await response.text())
                assert "Set-Cookie" not in response.headers
        assert (await login(session, web, OPERATOR_TOKEN)).status == 303


async def test_foreign_origins_and_hosts_are_refused(web: WebConsole) -> None:
    """With a valid session: a WebSocket from a foreign Origin, or with none, is
    refused (403); so is a login posted from a foreign page; a Host the web
    console does not serve (DNS rebinding) gets 421. No console starts."""
    async with http_session() as session:
        assert (await login(session, web, OPERATOR_TOKEN)).status == 303
        ws_url = f"ws://127.0.0.1:{web.port}/ws"
        for foreign in ("http://127.0.0.1:1", "http://evil.example", "null"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url, origin=foreign)
            assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url)  # no Origin at all
        assert refused.value.status == 403
        async with session.post(f"{origin(web)}/login", data={"token": OPERATOR_TOKEN},
                                headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403 and "Set-Cookie" not in response.headers
        async with session.get(f"{origin(web)}/",
                               headers={"Host": f"rebound.example:{web.port}"}) as response:
            assert response.status == 421
    assert not web.running
    refusals = [line for line in audit_lines(web) if line["event"] == "refused"]
    assert {(line["path"], line.get("origin")) for line in refusals} >= {
        ("/ws", "http://127.0.0.1:1"), ("/ws", None), ("/login", "http://evil.example")}


async def test_a_console_runs_with_its_login_token_and_the_cap_holds(
        web: WebConsole, live: Live) -> None:
    """A read-only login's console gets the read-only token through its
    environment (no command line holds a token) and says so; frames no browser
    sends (deeply nested JSON, an infinite size, binary) are ignored and the
    console keeps answering; a second console past the cap of one is refused
    with 503; closing the browser's WebSocket ends the console process, and the
    audit says why."""
    async with http_session() as session:
        assert (await login(session, web, READ_ONLY_TOKEN)).status == 303
        ws_url = f"ws://127.0.0.1:{web.port}/ws?width=120&height=30"
        ws = await session.ws_connect(ws_url, origin=origin(web))
        chunks: list[bytes] = []

        async def drawn(text: str) -> None:
            async with asyncio.timeout(TIMEOUT):
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        chunks.append(message.data)
                        if text in drawn_text(chunks):
                            return
            raise AssertionError(f"the console closed before drawing {text!r}")

        await drawn("read-only")  # the status bar says the role
        (running,) = web.running
        assert running.console is not None and running.console.pid is not None
        pid = running.console.pid
        assert environment_of(pid)["WSCONSOLE_TOKEN"] == READ_ONLY_TOKEN
        assert stat.S_IMODE(Path(f"/proc/{pid}/environ").stat().st_mode) & 0o077 == 0
        assert not [line for line in command_lines()
                    if READ_ONLY_TOKEN in line or OPERATOR_TOKEN in line]

        for hostile in ("[" * 30_000 + "]" * 30_000, '["resize", {"width": 1e999}]',
                        '["resize", {"width": NaN, "height": -Infinity}]', '["stdin", 7]',
                        '["ping", ["x"]]', "{}", "[]", "null"):
            await ws.send_str(hostile)
        await ws.send_bytes(b"\x00\xff")
        await ws.send_str('["resize", {"width": 100, "height": 30}]')
        await ws.send_str('["ping", "still there"]')  # frames are relayed in order
        async with asyncio.timeout(TIMEOUT):
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT and \
                        json.loads(message.data) == ["pong", "still there"]:
                    break
        assert not ws.closed and web.running == {running}
        assert running.console.pid == pid and Path(f"/proc/{pid}").exists()

        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url, origin=origin(web))
        assert refused.value.status == 503

        await ws.close()
        await wait_for(lambda: not web.running)
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text()
    ended = [line for line in audit_lines(web) if line["event"] == "console_ended"]
    assert ended[-1]["role"] == "read_only" and ended[-1]["reason"] == "browser went away"
    assert any("cap of 1" in line.get("reason", "") for line in audit_lines(web))


async def test_login_attempts_are_rate_limited(live: Live, tmp_path: Path) -> None:
    """Past --login-rate attempts a minute from one address, a login is answered
    429 with Retry-After, even with the right token; a flood is audited once."""
    async with started_web_console(live.url, login_rate=2,
                                   audit_log=str(tmp_path / "audit.jsonl")) as web:
        async with http_session() as session:
            for _ in range(2):
                assert (await login(session, web, "wrong-token-for-the-limit")).status == 401
            for _ in range(3):
                response = await login(session, web, OPERATOR_TOKEN)
                assert response.status == 429
                assert int(response.headers["Retry-After"]) >= 1
            assert not session.cookie_jar.filter_cookies(origin(web))
        events = [line["event"] for line in audit_lines(web)]
        assert events.count("login_refused") == 2
        assert events.count("login_rate_limited") == 1


async def test_an_expired_session_is_refused_and_audited(live: Live, tmp_path: Path) -> None:
    """When a session's time is up its cookie opens nothing, and the sweep
    audits it as expired."""
    now = [1000.0]
    async with started_web_console(live.url, session_ttl=60, clock=lambda: now[0],
                                   audit_log=str(tmp_path / "audit.jsonl")) as web:
        async with http_session() as session:
            assert (await login(session, web, READ_ONLY_TOKEN)).status == 303
            async with session.get(f"{origin(web)}/", allow_redirects=False) as page:
                assert page.status == 200
            now[0] += 61
            async with session.get(f"{origin(web)}/", allow_redirects=False) as page:
                assert page.status == 303
            await web.expire_sessions()
        expired = [line for line in audit_lines(web) if line["event"] == "session_expired"]
        assert [line["role"] for line in expired] == ["read_only"] and not web.sessions


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert path, key path)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return str(cert), str(key)


async def test_over_tls_the_cookie_is_secure(live: Live, certificate: tuple[str, str]) -> None:
    """Over HTTPS the session cookie is Secure and __Host- prefixed, and the page's
    WebSocket is wss://."""
    cert, key = certificate
    async with started_web_console(live.url, cert=cert, key=key) as web:
        context = ssl.create_default_context(cafile=cert)
        https = f"https://127.0.0.1:{web.port}"
        async with http_session() as session:
            async with session.post(f"{https}/login", data={"token": OPERATOR_TOKEN},
                                    headers={"Origin": https}, ssl=context,
                                    allow_redirects=False) as response:
                assert response.status == 303
                cookie = SimpleCookie(response.headers["Set-Cookie"])[SECURE_COOKIE_NAME]
                assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
            async with session.get(f"{https}/", ssl=context) as page:
                assert f"wss://127.0.0.1:{web.port}/ws" in await page.text()

"""The web console's rules as plain values: the bind check, origins, sessions,
the login rate and the console's command line. No server, no browser."""

from __future__ import annotations

from pathlib import Path
import pytest

from wsconsole.console.web.sessions import LoginLimiter, SessionStore
from wsconsole.console.web.settings import (
    WebSettings,
    allowed_origins,
    check_settings,
    origin_of,
)
from wsconsole.server.errors import ConfigError
from wsconsole.server.protocol import Role

URL = "ws://127.0.0.1:8766"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_non_loopback_bind_needs_tls_or_insecure() -> None:
    """As for the control listener: a LAN address without TLS is refused with one
    line naming the ways out; --insecure or a certificate and key allow it."""
    with pytest.raises(ConfigError, match="--insecure"):
        check_settings(WebSettings(URL, host="192.0.2.7"))
    with pytest.raises(ConfigError, match="--insecure"):
        check_settings(WebSettings(URL, host="console.example"))
    check_settings(WebSettings(URL, host="192.0.2.7", insecure=True))
    check_settings(WebSettings(URL, host="192.0.2.7", cert="c.pem", key="k.pem"))
    with pytest.raises(ConfigError, match="both"):
        check_settings(WebSettings(URL, host="127.0.0.1", cert="c.pem"))
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_settings(WebSettings(URL, host=loopback))


def test_a_wildcard_bind_needs_the_origins_browsers_use() -> None:
    """0.0.0.0 has no name a browser would use: --origin is required, and each
    one must be a bare http(s) origin."""
    with pytest.raises(ConfigError, match="--origin"):
        check_settings(WebSettings(URL, host="0.0.0.0", insecure=True))
    check_settings(WebSettings(URL, host="0.0.0.0", insecure=True,
                               origins=("http://console.example:8767",)))
    with pytest.raises(ConfigError, match="scheme://host"):
        check_settings(WebSettings(URL, host="127.0.0.1", origins=("http://a.example/path",)))
    with pytest.raises(ConfigError, match="not an http"):
        check_settings(WebSettings(URL, host="127.0.0.1", origins=("ftp://a.example",)))


def test_origins_are_written_as_browsers_write_them() -> None:
    """Lower case, default ports left out, IPv6 in brackets; on loopback the
    default origins are localhost's, 127.0.0.1's and [::1]'s at the bound port."""
    assert origin_of("HTTPS://Console.Example:443") == "https://console.example"
    assert origin_of("http://[::1]:8767/") == "http://[::1]:8767"
    assert allowed_origins(WebSettings(URL), 8767) == {
        "http://127.0.0.1:8767", "http://localhost:8767", "http://[::1]:8767"}
    assert allowed_origins(WebSettings(URL, host="192.0.2.7", cert="c", key="k"), 443) == {
        "https://192.0.2.7"}


def test_sessions_expire_and_the_oldest_goes_past_the_limit() -> None:
    """A cookie finds its session until the session's time is up; a malformed or
    unknown one finds nothing; past max_logins the oldest is pushed out."""
    clock = Clock()
    store = SessionStore(ttl=60, max_logins=2, clock=clock)
    cookie, session, evicted = store.create(Role.READ_ONLY, "tok", "127.0.0.1:1")
    assert not evicted and store.find(cookie) is session
    assert "tok" not in repr(session) and cookie not in session.key
    assert store.find("x" * 500) is None and store.find(None) is None
    assert store.find(cookie + "x") is None
    clock.now += 59
    assert store.find(cookie) is session and store.remaining(session) == pytest.approx(1)
    second = store.create(Role.OPERATOR, "t2", "127.0.0.1:2")[1]
    third_cookie, third, evicted = store.create(Role.OPERATOR, "t3", "127.0.0.1:3")
    assert evicted == [session]
    clock.now += 2
    assert store.find(third_cookie) is third and store.alive(second)
    assert not store.alive(session)
    clock.now += 60
    assert store.find(third_cookie) is None
    assert store.expire() == [second, third] and len(store) == 0


def test_login_attempts_are_limited_per_address_and_in_total() -> None:
    """N a minute from one address (an IPv6 /64 counts as one), refilled over
    the minute; the total caps everyone together."""
    clock = Clock()
    limiter = LoginLimiter(per_minute=2, total_per_minute=3, clock=clock)
    assert limiter.admit("10.0.0.1") is None and limiter.admit("10.0.0.1") is None
    wait = limiter.admit("10.0.0.1")
    assert wait is not None and 1 <= wait <= 30
    assert limiter.admit("2001:db8::1") is None
    assert limiter.admit("2001:db8::2") is not None  # the total: 3 a minute
    clock.now += 30
    assert limiter.admit("10.0.0.1") is None
    unlimited = LoginLimiter(per_minute=0, total_per_minute=0, clock=clock)
    assert all(unlimited.admit("10.0.0.1") is None for _ in range(100))


def test_the_console_command_names_the_url_and_never_a_token() -> None:
    """Each console is `exec python -m wsconsole.console.cli console --url URL`:
    the token goes through its environment only."""
    pytest.importorskip("textual_serve", reason="the web extra is not installed")
    from wsconsole.console.web.server import console_command

    command = console_command(WebSettings("ws://127.0.0.1:9/x y", node="n-1"))
    assert command.startswith("exec ")
    assert "console --url 'ws://127.0.0.1:9/x y' --node n-1" in command
    assert "token" not in command


def test_a_non_loopback_bind_is_one_line_and_exit_status_1(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """`wsconsole web --host 192.0.2.7` (no TLS, no --insecure) says why in one
    line on stderr before binding anything."""
    from wsconsole.console.cli import main

    assert main(["web", "--host", "192.0.2.7", "--port", "0", "--url", URL]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsconsole: error: refusing to serve the web console on 192.0.2.7")
    assert "\n" not in err


def test_without_the_web_extra_the_command_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without textual-serve, `wsconsole web` is one line naming the extra."""
    import sys

    from wsconsole.console.cli import main

    monkeypatch.delitem(sys.modules, "wsconsole.console.web.server", raising=False)
    monkeypatch.setitem(sys.modules, "textual_serve", None)
    assert main(["web", "--port", "0", "--url", URL]) == 1
    assert "pip install 'wsconsole[web]'" in capsys.readouterr().err


def test_the_private_names_of_textual_serve_we_rely_on() -> None:
    """SessionConsole overrides AppService._build_environment(width, height) and
    reads its _process and _task: a textual-serve that renames them fails here."""
    pytest.importorskip("textual_serve", reason="the web extra is not installed")
    import inspect

    from textual_serve.app_service import AppService
    from textual_serve.download_manager import DownloadManager

    from wsconsole.console.web.server import SessionConsole

    assert list(inspect.signature(AppService._build_environment).parameters) == [
        "self", "width", "height"]

    async def nothing(*args: object) -> None:
        return None

    console = SessionConsole("true", "the-token", write_bytes=nothing, write_str=nothing,
                             close=nothing, download_manager=DownloadManager())
    assert console._process is None and console._task is None and console.pid is None
    environment = console._build_environment(width=100, height=30)
    assert environment["WSCONSOLE_TOKEN"] == "the-token"
    assert environment["TEXTUAL_DRIVER"] == "textual.drivers.web_driver:WebDriver"
    assert (environment["COLUMNS"], environment["ROWS"]) == ("100", "30")


def test_the_rules_are_pure_and_the_cli_loads_no_web_extra() -> None:
    """settings, sessions and audit load no asyncio, aiohttp, websockets or textual;
    the wsconsole command loads neither aiohttp nor textual-serve until `web` runs,
    so that the default install (no web extra) has every other command."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\n"
            "import wsconsole.console.web.settings, wsconsole.console.web.sessions, "
            "wsconsole.console.web.audit\n"
            "pure = sorted(sys.modules)\n"
            "from wsconsole.console.cli import build_parser; build_parser()\n"
            "print(json.dumps([pure, sorted(sys.modules)]))")
    pure, cli = (set(found) for found in json.loads(subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))

    def roots(modules: set[str]) -> set[str]:
        return {module.partition(".")[0] for module in modules}

    assert "wsconsole.console.web.audit" in pure
    assert not roots(pure) & {"asyncio", "aiohttp", "websockets", "textual", "textual_serve"}
    assert "wsconsole.console.web.command" in cli
    assert not roots(cli) & {"aiohttp", "textual_serve"}


def test_ci_runs_the_browser_test():
    """.ci/run turns the Chromium session on before the test command (the
    default run skips it for time, and says so): CI always drives a browser."""
    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    turned_on = script.find('export WSCONSOLE_TEST_BROWSER="${WSCONSOLE_TEST_BROWSER:-1}"')
    assert 0 <= turned_on < script.find(".venv/bin/pytest")
    assert "apt-get install -y -q chromium" in script

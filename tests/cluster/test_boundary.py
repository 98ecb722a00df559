"""Cluster mode costs nothing until it is asked for: without --redis, redis is
never imported; the cluster's message format and node table are pure."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.server.test_boundary import loaded_modules


def test_serving_without_redis_never_imports_redis():
    """A server with its control plane, asked every operation by a client, and
    `wsconsole serve`'s argument parsing, load no redis module."""
    code = textwrap.dedent("""
        import asyncio, json, sys
        from websockets.asyncio.client import connect
        from wsconsole.server import serve
        from wsconsole.server.config import ControlConfig
        from wsconsole.console.cli import build_parser
        from wsconsole.console.serve_command import cluster_settings_from_args

        async def echo(ws):
            async for m in ws: await ws.send(m)

        async def main():
            args = build_parser().parse_args(["serve"])
            assert cluster_settings_from_args(args) is None
            token = "boundary-token-0123456789"
            async with serve(echo, "127.0.0.1", 0,
                             control=ControlConfig(port=0, token=token)) as server:
                async with connect(server.control.url, additional_headers={
                        "Authorization": f"Bearer {token}"}) as ws:
                    for op in ("hello", "list", "stats", "nodes"):
                        await ws.send(json.dumps({"id": 1, "op": op}))
                        assert json.loads(await ws.recv())["ok"]
                await server.hub.send_everywhere(__import__(
                    "wsconsole.server").server.Selector(everyone=True), "x")

        asyncio.run(main())
    """)
    modules = loaded_modules(code)
    assert "wsconsole.server.hub" in modules
    assert not {m for m in modules if m == "redis" or m.startswith(("redis.", "hiredis"))}


PURE = ["settings", "envelope", "membership", "redis_server"]


@pytest.mark.parametrize("module", PURE)
def test_the_cluster_core_is_pure(module):
    """The settings, the message format, the node table and the private Redis
    launcher load no asyncio, websockets or redis."""
    modules = loaded_modules(f"import wsconsole.server.cluster.{module}")
    assert f"wsconsole.server.cluster.{module}" in modules
    assert not modules & {"asyncio", "websockets", "redis"}


@pytest.mark.parametrize("args, words", [
    (["--redis", "http://localhost"], "scheme"),
    (["--redis", "redis://:6379"], "no host"),
    (["--redis", "redis://host:99999"], "port"),
    (["--redis", "redis://host/x"], "database number"),
    (["--redis", "unix://"], "socket path"),
    (["--redis", "redis://localhost", "--cluster", "a b"], "cluster name"),
    (["--redis", "redis://localhost", "--cluster-secret-file", "MISSING"], "cannot read"),
    (["--redis", "redis://localhost", "--cluster-secret-file", "SHORT"], "shorter than 16"),
    (["--redis", "redis://localhost", "--no-secret"], "needs a cluster secret"),
    (["--cluster", "x"], "need --redis"),
])
def test_bad_cluster_settings_are_refused_before_anything_starts(args, words, tmp_path):
    """A Redis URL redis-py cannot use, a bad cluster name, or no usable secret
    is a ConfigError whose one-line message says what is wrong."""
    from wsconsole.console.cli import build_parser
    from wsconsole.console.serve_command import cluster_settings_from_args
    from wsconsole.server.errors import ConfigError

    (tmp_path / "short").write_text("tooshort")
    (tmp_path / "secret").write_text("s" * 32)
    args = [{"MISSING": str(tmp_path / "none"), "SHORT": str(tmp_path / "short")}.get(a, a)
            for a in args]
    if "--no-secret" in args:
        args.remove("--no-secret")
    elif "--redis" in args and "--cluster-secret-file" not in args:
        args += ["--cluster-secret-file", str(tmp_path / "secret")]
    parsed = build_parser().parse_args(["serve", *args])
    with pytest.raises(ConfigError) as info:
        cluster_settings_from_args(parsed)
    assert words in info.value.message.lower() and "\n" not in info.value.message


def test_a_bad_redis_url_is_one_line_and_exit_2():
    """`wsconsole serve --redis BAD` prints one line on stderr and exits 2, before serving."""
    result = subprocess.run(
        [sys.executable, "-m", "wsconsole.console.cli", "serve", "--port", "0", "--no-control",
         "--redis", "http://localhost"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "wsconsole: error: bad Redis URL 'http://localhost': the scheme must be redis://, "
        "rediss:// or unix://"]
    assert result.stdout == ""

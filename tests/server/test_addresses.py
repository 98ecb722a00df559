"""How addresses are written, with plain values."""

from __future__ import annotations

import pytest

from wsconsole.server.addresses import host_port


@pytest.mark.parametrize(
    "host, port, text",
    [("127.0.0.1", 8765, "127.0.0.1:8765"), ("::1", 80, "[::1]:80"),
     ("[::1]", 80, "[::1]:80"), ("example.com", "443", "example.com:443")],
)
def test_host_port_puts_ipv6_hosts_in_brackets(host, port, text):
    """An IPv6 host is bracketed once, so the port stays readable."""
    assert host_port(host, port) == text

"""The HTTP responses wsconsole answers itself (health, metrics, refusals)."""

from __future__ import annotations

import http

from wsconsole.server.responses import http_response


def test_a_response_has_its_exact_length_and_is_never_cached():
    """Content-Length counts UTF-8 bytes; keyword headers get their dashes."""
    response = http_response(http.HTTPStatus.UNAUTHORIZED, "é\n",
                             WWW_Authenticate='Bearer realm="wsconsole"')
    assert (response.status_code, response.reason_phrase) == (401, "Unauthorized")
    assert response.body == "é\n".encode()
    assert response.headers["Content-Length"] == "3"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="wsconsole"'


def test_head_keeps_the_headers_of_the_full_response_without_the_body():
    """A HEAD answer announces the length a GET would get, and sends no body."""
    response = http_response(http.HTTPStatus.OK, b'{"ok":true}\n', head=True,
                             content_type="application/json")
    assert response.body == b""
    assert response.headers["Content-Length"] == "12"
    assert response.headers["Content-Type"] == "application/json"

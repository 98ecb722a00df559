"""The HTTP responses wsconsole itself answers instead of a WebSocket handshake.

The health path of the public server, and ``/metrics``, ``/healthz`` and the
refusals of the control listener: every one has an exact ``Content-Length``,
is never cached, and answers ``HEAD`` with the headers alone.

An asyncio edge helper: imports websockets' HTTP types, never textual.
"""

from __future__ import annotations

import http

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["http_response"]


def http_response(status: http.HTTPStatus, body: str | bytes, *, head: bool = False,
                  content_type: str = "text/plain; charset=utf-8",
                  **headers: str) -> Response:
    """A complete response; ``headers`` by keyword, ``_`` for ``-`` (``WWW_Authenticate``).

    ``head=True`` keeps the headers of the full response, ``Content-Length``
    included, and drops the body (RFC 9110, HEAD).
    """
    data = body.encode() if isinstance(body, str) else body
    response_headers = Headers()
    response_headers["Content-Type"] = content_type
    response_headers["Content-Length"] = str(len(data))
    # Health and metrics are live values; a proxy must never serve an old one.
    response_headers["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response_headers[name.replace("_", "-")] = value
    return Response(status.value, status.phrase, response_headers, b"" if head else data)

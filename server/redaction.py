"""What never leaves wsconsole unredacted: secret headers, secret query values,
JSON Web Tokens wherever they appear in either, and all of these in log lines.

One rule for every place that shows a client's or an operator's request: the
control plane's ``get`` (headers), connection summaries and events (query),
and the log lines of the public server, the control listener and the
console's client, at every level.

The rule, for a header name or a query parameter name:

1. A query name is percent-decoded first (``+`` is a space), as the
   application will decode it, so ``t%6Fken`` is ``token``; it is decoded
   again while that changes it (at most four times), for double encoding.
2. The name is cut into words: at every character that is not a letter or a
   digit, between letters and digits, and at case boundaries (``accessToken``
   is ``access token``, ``APIKey`` is ``api key``); words are case-folded.
3. The name is secret when one of its words is in :data:`SECRET_WORDS`
   (``token``, ``password``, ``pwd``, ``sig``, ``session``, ``sid``, ``jwt``
   ...), or its last word is in :data:`SECRET_LAST_WORDS` (``key``: so
   ``api_key``, ``X-Api-Key`` and ``key`` are secret but ``key_id`` is not),
   or its words run together end with one of :data:`SECRET_SUFFIXES`
   (``accesstoken``, ``xapikey``, ``jsessionid``). Whole words only, never a
   substring: ``keyboard``, ``monkey``, ``author``, ``passenger`` and
   ``design`` stay visible.
4. Headers also: the names in :data:`SECRET_HEADERS` always, and never those
   in :data:`PUBLIC_HEADERS` (``Sec-WebSocket-Key`` is a nonce, not a key).
5. Names an operator adds (:meth:`RedactionRules.extended`, ``serve``'s
   ``redact_headers``/``redact_query``, ``--redact-header``/``--redact-query``)
   extend these, never replace them, and match a whole name with case and
   separators ignored (``tenant_key`` hides ``Tenant-Key`` and ``tenantKey``,
   not ``tenant_key_id``); they win over :data:`PUBLIC_HEADERS`.

Values, whatever their name: a JSON Web Token (``eyJ...``, dot-separated) in a
header or query value is replaced, and a URL in a header value (``Referer``)
has its query redacted by the same rule. Paths are shown as they are.

Pure: must never import asyncio, websockets or textual (``logging`` is fine).
"""

from __future__ import annotations

import copy
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "PUBLIC_HEADERS",
    "SECRET_WORDS",
    "SECRET_LAST_WORDS",
    "SECRET_SUFFIXES",
    "name_words",
    "is_secret_name",
    "RedactionRules",
    "DEFAULT_RULES",
    "redact_headers",
    "redact_query",
    "redact_target",
    "redact_text",
    "redact_log_args",
    "RedactingLogger",
    "RedactedException",
]

REDACTED = "[redacted]"
"""What replaces a secret value."""

SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "x-api-key", "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token",
    "x-amz-security-token", "x-goog-api-key", "x-vault-token",
})
"""Header names whose values are never shown (case-folded). The word rule
already covers these; they are listed so that they stay covered whatever
becomes of the word lists."""

PUBLIC_HEADERS = frozenset({"sec-websocket-key"})
"""Header names that the word rule would hide but that carry no secret: the
handshake's nonce, useful when debugging a handshake."""

SECRET_WORDS = frozenset({
    "token", "tokens", "secret", "secrets",
    "password", "passwords", "passwd", "passphrase", "pwd", "pw", "pass",
    "auth", "authorization", "credential", "credentials", "creds", "bearer",
    "apikey", "signature", "sig", "hmac",
    "session", "sessionid", "sessid", "sid",
    "jwt", "cookie", "csrf", "xsrf", "otp", "ticket", "verifier", "assertion",
})
"""A name with one of these words is secret (``access_token``, ``X-Auth-Token``,
``client_secret``, ``pwd``, ``X-Amz-Signature``, ``sig``, ``connect.sid``,
``ticket``, ``code_verifier``)."""

SECRET_LAST_WORDS = frozenset({"key"})
"""Secret only as the last word: ``api_key``, ``X-Api-Key``, ``access_key``,
``key``; ``key_id`` and ``key_name`` name a key without being one."""

SECRET_SUFFIXES = (
    "token", "secret", "password", "passwd", "passphrase", "signature",
    "credential", "credentials", "apikey", "accesskey", "secretkey", "privatekey",
    "sessionid", "sessid",
)
"""Secret when the words run together end so: names written as one word
(``accesstoken``, ``authtoken``, ``clientsecret``, ``jsessionid``,
``PHPSESSID``)."""

_MAX_DECODE_ROUNDS = 4

# A JWS or JWE in compact form: a base64url header that starts with '{"'
# (always "eyJ"), then one to four more dot-separated base64url parts.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){1,4}")

# A query parameter inside free text (an exception message quoting a request
# line): after '?', '&' or ';', up to whitespace, a quote or the next one.
_TEXT_PARAMETER = re.compile(r"(?<=[?&;])([^\s=&;#?'\"]+)=([^\s&;#'\"]+)")

_QUERY_SEPARATORS = re.compile(r"([&;])")  # ';' too: some frameworks split on it
_LETTER_OR_DIGIT_RUNS = re.compile(r"[^\W_]+")


def name_words(name: str) -> list[str]:
    """The case-folded words of a name: ``"X-ApiKey_v2"`` -> ``["x", "api", "key", "v", "2"]``."""
    words: list[str] = []
    for run in _LETTER_OR_DIGIT_RUNS.findall(name):
        start = 0
        for i in range(1, len(run)):
            before, here = run[i - 1], run[i]
            after = run[i + 1] if i + 1 < len(run) else ""
            if (
                before.isdigit() != here.isdigit()
                or (here.isupper() and before.islower())
                # The last capital of an acronym starts the next word: APIKey.
                or (here.isupper() and before.isupper() and after.islower())
            ):
                words.append(run[start:i])
                start = i
        words.append(run[start:])
    return [word.casefold() for word in words]


def _compact(name: str) -> str:
    return "".join(name_words(name))


def is_secret_name(name: str) -> bool:
    """The built-in rule on a name as the application sees it (already decoded)."""
    words = name_words(name)
    if not words:
        return False
    if words[-1] in SECRET_LAST_WORDS or not SECRET_WORDS.isdisjoint(words):
        return True
    return "".join(words).endswith(SECRET_SUFFIXES)


def _decoded(name: str) -> str:
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name


@dataclass(frozen=True, slots=True)
class RedactionRules:
    """The built-in rule plus the names an operator added.

    Build with :meth:`extended`; :data:`DEFAULT_RULES` has no added names.
    """

    extra_headers: frozenset[str] = frozenset()
    """Added header names, compacted (case and separators dropped)."""
    extra_query: frozenset[str] = frozenset()
    """Added query parameter names, compacted."""

    def extended(self, headers: Iterable[str] = (), query: Iterable[str] = ()) -> RedactionRules:
        """These rules with more header and query names (a name that compacts
        to nothing, such as ``"-"``, is refused with ValueError)."""
        def compacted(names: Iterable[str], kind: str) -> frozenset[str]:
            if isinstance(names, str):
                names = [names]
            out = set()
            for name in names:
                compact = _compact(_decoded(name) if kind == "query" else name)
                if not compact:
                    raise ValueError(f"{kind} name {name!r} has no letter or digit")
                out.add(compact)
            return frozenset(out)

        return RedactionRules(self.extra_headers | compacted(headers, "header"),
                              self.extra_query | compacted(query, "query"))

    # Names

    def header_is_secret(self, name: str) -> bool:
        """True if the values of the header ``name`` are never shown."""
        folded = name.casefold()
        if folded in SECRET_HEADERS:
            return True
        if self.extra_headers and _compact(name) in self.extra_headers:
            return True
        return folded not in PUBLIC_HEADERS and is_secret_name(name)

    def query_name_is_secret(self, name: str) -> bool:
        """True if the values of the query parameter ``name`` (raw, as in the
        request line) are never shown."""
        decoded = _decoded(name)
        if self.extra_query and _compact(decoded) in self.extra_query:
            return True
        return is_secret_name(decoded)

    # Values

    def redact_query(self, query: str) -> str:
        """The query string with secret values replaced, the rest byte for byte.

        ``user=ann&access_token=abc`` becomes ``user=ann&access_token=[redacted]``.
        """
        if not query:
            return query
        pieces = _QUERY_SEPARATORS.split(query)  # separators at odd indexes
        for i in range(0, len(pieces), 2):
            part = pieces[i]
            name, sep, value = part.partition("=")
            if sep and value and self.query_name_is_secret(name):
                pieces[i] = f"{name}={REDACTED}"
            elif "eyJ" in part:
                pieces[i] = _JWT.sub(REDACTED, part)
        return "".join(pieces)

    def redact_target(self, target: str) -> str:
        """A request target or URL (``/path?query#fragment``) with its query redacted."""
        head, sep, rest = target.partition("?")
        if not sep:
            return target
        query, hash_sign, fragment = rest.partition("#")
        return f"{head}?{self.redact_query(query)}{hash_sign}{fragment}"

    def redact_header_value(self, name: str, value: str) -> str:
        """The value of one header as it may be shown."""
        if self.header_is_secret(name):
            return REDACTED
        if "eyJ" in value:
            value = _JWT.sub(REDACTED, value)
        if "?" in value:
            # Referer, X-Original-URI and the like quote a request's URL.
            value = self.redact_target(value)
        return value

    def redact_headers(self, headers: Any) -> list[list[str]]:
        """``[name, value]`` pairs with secret values replaced by ``[redacted]``.

        ``headers`` is an iterable of pairs, or any object with ``raw_items()``
        (such as websockets' ``Headers``, which records keep as they are rather
        than copy, to save memory per connection).
        """
        if hasattr(headers, "raw_items"):
            headers = headers.raw_items()
        return [[name, self.redact_header_value(name, value)] for name, value in headers]

    def redact_text(self, text: str) -> str:
        """Free text (an exception's message) with secret query values and JWTs replaced."""
        if "=" in text:
            text = _TEXT_PARAMETER.sub(self._parameter_in_text, text)
        if "eyJ" in text:
            text = _JWT.sub(REDACTED, text)
        return text

    def _parameter_in_text(self, match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}={REDACTED}" if self.query_name_is_secret(name) else match.group(0)

    # Log records

    def redact_log_args(self, msg: Any, args: Any) -> Any:
        """The arguments of one websockets log call, with secrets redacted.

        ``msg`` and ``args`` as websockets passes them to its logger; anything
        that is not a handshake line comes back unchanged (the same object).
        """
        if not isinstance(args, tuple):
            return args
        if len(args) == 2 and msg in _HEADER_LINES:
            name, value = args
            shown = self.redact_header_value(str(name), str(value))
            return args if shown == value else (name, shown)
        if len(args) == 3 and msg == _REQUEST_LINE:
            target = str(args[1])
            shown = self.redact_target(target)
            return args if shown == target else (args[0], shown, args[2])
        if len(args) == 1 and msg == _CLIENT_REQUEST_LINE:
            target = str(args[0])
            shown = self.redact_target(target)
            return args if shown == target else (shown,)
        return args

    def redact_exc_info(self, exc_info: Any) -> Any:
        """``exc_info`` as given to a log call, with an exception whose message
        (or whose cause's) quotes a secret replaced by a redacted copy."""
        if exc_info is True:
            exc_info = sys.exc_info()
        if isinstance(exc_info, BaseException):
            exc = exc_info
        elif isinstance(exc_info, tuple) and len(exc_info) == 3:
            exc = exc_info[1]
        else:
            return exc_info
        if not isinstance(exc, BaseException):
            return exc_info
        redacted = self._redacted_exception(exc, set())
        if redacted is exc:
            return exc_info
        return (type(redacted), redacted, redacted.__traceback__)

    def _redacted_exception(self, exc: BaseException | None, seen: set[int]) -> Any:
        if exc is None or id(exc) in seen:
            return exc
        seen.add(id(exc))
        cause = self._redacted_exception(exc.__cause__, seen)
        context = self._redacted_exception(exc.__context__, seen)
        try:
            text = str(exc)
        except Exception:
            text = ""
        shown = self.redact_text(text)
        if shown == text and cause is exc.__cause__ and context is exc.__context__:
            return exc
        clone: BaseException
        try:
            clone = copy.copy(exc)
            if shown != text:
                clone.args = tuple(
                    self.redact_text(arg) if isinstance(arg, str) else arg for arg in exc.args
                )
                if str(clone) != shown:  # a __str__ of its own, not made from args
                    raise TypeError
        except Exception:
            clone = RedactedException(f"{type(exc).__module__}.{type(exc).__qualname__}: {shown}")
        clone.__traceback__ = exc.__traceback__
        clone.__cause__ = cause
        clone.__context__ = context
        clone.__suppress_context__ = exc.__suppress_context__
        return clone


class RedactedException(Exception):
    """Stands in, in a log record, for an exception that could not be copied
    with its message redacted; its message names the original type.

    Never raised, so not part of wsconsole's error tree (:mod:`.errors`).
    """


# websockets' handshake lines at DEBUG (websockets/server.py, client.py): one
# per header, and the request line, whose target may carry a query.
_HEADER_LINES = frozenset({"< %s: %s", "> %s: %s"})
_REQUEST_LINE = "< %s %s %s"
_CLIENT_REQUEST_LINE = "> GET %s HTTP/1.1"

DEFAULT_RULES = RedactionRules()
"""The built-in rule, with no names added."""

redact_headers = DEFAULT_RULES.redact_headers
redact_query = DEFAULT_RULES.redact_query
redact_target = DEFAULT_RULES.redact_target
redact_text = DEFAULT_RULES.redact_text
redact_log_args = DEFAULT_RULES.redact_log_args


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger to hand to websockets (``logger=``): secrets never reach a handler.

    Handshake header and request lines are redacted by ``rules``, and so are
    the messages of the exceptions a record carries (websockets logs a
    malformed request line inside one, at DEBUG). It keeps the wrapped
    logger's name, so logging configured for that name (``websockets.server``
    by default) still applies, and the caller's ``extra``.
    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter,  # type: ignore[type-arg]
        rules: RedactionRules = DEFAULT_RULES,
    ) -> None:
        super().__init__(logger, None)
        self.rules = rules
        """What is redacted."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        args = self.rules.redact_log_args(msg, args)
        if kwargs.get("exc_info"):
            kwargs["exc_info"] = self.rules.redact_exc_info(kwargs["exc_info"])
        # The record names websockets' call site, not this method.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        super().log(level, msg, *args, **kwargs)

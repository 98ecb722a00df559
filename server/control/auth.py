"""Authentication and roles of the control plane: which token, which role, which operations.

Tokens are loaded (or created) once at start; a request's bearer token is
compared against every token in constant time; a role may run an operation or
not. Tokens are never logged, and neither are ``Authorization`` headers.

Must never import textual or ``wsconsole.console``.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets

from websockets.datastructures import Headers

from .. import wire
from ..config import ControlConfig
from ..errors import ConfigError, Forbidden
from ..protocol import MAX_TOKEN_LENGTH, Role, token_problem

__all__ = [
    "Authenticator",
    "authorize",
    "load_token",
]

logger = logging.getLogger("wsconsole.control")


def _check_token(token: str, where: str) -> str:
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(f"{where} {problem}")
    return token


def load_token(token: str | None, path: str | None, what: str) -> tuple[str | None, str | None, bool]:
    """Resolve one token: ``(token, file it came from or None, created)``.

    A token given directly wins; else the file is read, or created (mode 0600,
    parent directories 0700) with a new random token if it does not exist.
    """
    if token is not None:
        return _check_token(token, f"the {what} token"), None, False
    if path is None:
        return None, None, False
    path = os.path.expanduser(path)
    created = False
    try:
        with open(path, encoding="ascii") as file:
            value = file.read().strip()
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            # O_EXCL: never overwrite a file another process created meanwhile.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_token(None, path, what)
        except OSError as exc:
            raise ConfigError(f"cannot create the {what} token file {path}: {exc.strerror}") from exc
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(value + "\n")
        created = True
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise ConfigError(f"cannot read the {what} token file {path}: {reason}") from exc
    else:
        try:
            mode = os.stat(path).st_mode
        except OSError:  # pragma: no cover - removed between read and stat
            mode = 0
        if mode & 0o077:
            logger.warning("the %s token file %s is readable by others (mode %o); "
                           "chmod 600 it", what, path, mode & 0o777)
    return _check_token(value, f"the {what} token file {path}"), path, created


class Authenticator:
    """The tokens of one control listener, and the role each one grants.

    Built at start: raises :class:`ConfigError` if there is no token at all,
    if a token file cannot be read or created, or if both roles share a token.
    """

    def __init__(self, config: ControlConfig) -> None:
        operator, self.token_file, self.token_file_created = load_token(
            config.token, config.token_file, "operator")
        read_only, self.read_only_token_file, self.read_only_token_file_created = load_token(
            config.read_only_token, config.read_only_token_file, "read-only")
        if operator is None and read_only is None:
            raise ConfigError("the control listener needs a token: give --token, "
                              "--token-file or WSCONSOLE_TOKEN (or use --no-control)")
        if operator is not None and operator == read_only:
            raise ConfigError("the operator and read-only tokens must differ")
        self.operator_token_given = operator is not None and self.token_file is None
        """True if the operator token came from the command line or environment."""
        self._tokens: list[tuple[bytes, Role]] = []
        if operator is not None:
            self._tokens.append((operator.encode("ascii"), Role.OPERATOR))
        if read_only is not None:
            self._tokens.append((read_only.encode("ascii"), Role.READ_ONLY))

    def describe(self) -> list[str]:
        """Human lines: which token files, whether one was created; never a token."""
        lines = []
        for what, path, created in (
            ("operator", self.token_file, self.token_file_created),
            ("read-only", self.read_only_token_file, self.read_only_token_file_created),
        ):
            if path is not None:
                lines.append(f"{what} token {'created in' if created else 'read from'} {path}")
        if self.operator_token_given:
            lines.append("operator token given on the command line or in WSCONSOLE_TOKEN")
        return lines

    def role_of(self, headers: Headers) -> Role | None:
        """The role of a request's bearer token, or None. Never logs the header."""
        values = headers.get_all("Authorization")
        if len(values) != 1:
            return None
        value = values[0]
        if len(value) > MAX_TOKEN_LENGTH + len("Bearer "):
            return None
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            candidate = credentials.strip().encode("ascii")
        except UnicodeEncodeError:
            return None
        if not candidate:
            return None
        role = None
        # Compare against every token, always, so timing says nothing about which.
        for token, token_role in self._tokens:
            if hmac.compare_digest(candidate, token) and role is None:
                role = token_role
        return role


def authorize(role: Role, op: str) -> None:
    """Raise :class:`Forbidden` unless ``role`` may run ``op``."""
    if op in wire.MUTATING_OPERATIONS and role != Role.OPERATOR:
        raise Forbidden(f"the {role} role may not run {op}")

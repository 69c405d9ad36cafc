"""Bearer tokens of the HTTP intake: one per agent (or agency), from configuration. A token names its agent; the
name (and the token's organization, when it has one) become hints on the agent's events.

Presented tokens are compared in constant time: by SHA-256 digest, against every known token whichever matches,
so neither the secret nor which token matched shows in the timing."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from collectors.http_wire import HttpRequestError

__all__ = ["MIN_TOKEN_LENGTH", "AgentToken", "AgentTokens"]

MIN_TOKEN_LENGTH: Final = 16


@dataclass(frozen=True, slots=True)
class AgentToken:
    """A bearer token and the agent (or agency) it stands for. `name` becomes the events' `agent.name` when the
    record has none; `organization`, when set, their `organization.id`."""

    name: str
    token: str = field(repr=False)
    organization: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an agent token needs a name")
        if len(self.token) < MIN_TOKEN_LENGTH or not self.token.isascii() or not self.token.isprintable() \
                or " " in self.token:
            raise ValueError(f"token of agent {self.name!r} must be at least {MIN_TOKEN_LENGTH} printable ASCII "
                             f"characters without spaces")
        if self.organization is not None and not self.organization.strip():
            raise ValueError(f"organization of agent {self.name!r} is empty")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentToken:
        """From configuration: ``{"name": ..., "token": ..., "organization": ...}`` (organization optional)."""
        unknown = set(data) - {"name", "token", "organization"}
        if unknown:
            raise ValueError(f"unknown agent token keys: {', '.join(sorted(unknown))}")
        name, token, organization = data.get("name"), data.get("token"), data.get("organization")
        given = {"name": name, "token": token, "organization": "" if organization is None else organization}
        wrong = [key for key, value in given.items() if not isinstance(value, str)]
        if wrong:
            raise ValueError(f"agent token {', '.join(wrong)}: expected a string")
        return cls(str(name), str(token), organization)

    def to_dict(self) -> dict[str, str]:
        out = {"name": self.name, "token": self.token}
        if self.organization is not None:
            out["organization"] = self.organization
        return out


class AgentTokens:
    """Bearer tokens compared in constant time: every known token's digest is compared, whichever matches."""

    def __init__(self, tokens: Sequence[AgentToken]) -> None:
        if not tokens:
            raise ValueError("the HTTP intake needs at least one agent token")
        names = Counter(token.name for token in tokens)
        secrets = Counter(token.token for token in tokens)
        if (name := next((n for n, c in names.items() if c > 1), None)) is not None:
            raise ValueError(f"agent token name {name!r} is given twice")
        if any(count > 1 for count in secrets.values()):
            raise ValueError("two agents share a token: give each its own")
        self._known = [(hashlib.sha256(token.token.encode()).digest(), token) for token in tokens]

    def identify(self, authorization: str | None) -> AgentToken:
        """The agent an `Authorization` header stands for; 401 (`HttpRequestError`) without a known bearer token."""
        if not authorization:
            raise _unauthorized("missing bearer token", "invalid_request")
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("expected Authorization: Bearer <token>", "invalid_request")
        digest = hashlib.sha256(credentials.strip().encode("utf-8", "surrogateescape")).digest()
        found = None
        for known, token in self._known:
            if hmac.compare_digest(known, digest):
                found = token
        if found is None:
            raise _unauthorized("unknown token", "invalid_token")
        return found


def _unauthorized(reason: str, code: str) -> HttpRequestError:
    challenge = f'Bearer realm="socctl", error="{code}"'
    return HttpRequestError(401, reason, close=True, headers=(("WWW-Authenticate", challenge),))

"""Who is calling: principals, their kind and their roles."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class PrincipalKind(enum.Enum):
    """A person or an automated decision maker."""

    HUMAN = "human"
    AI = "ai"


class Role(enum.Enum):
    """What a principal may do (DESIGN.md §3)."""

    VIEWER = "viewer"
    PROPOSER = "proposer"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    OPERATOR = "operator"
    ADMIN = "admin"
    SIGNAL_PUBLISHER = "signal_publisher"
    # Reads the audit log (ListAuditRecords) and nothing else.
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    kind: PrincipalKind
    roles: frozenset[Role]

    @property
    def is_human(self) -> bool:
        """True for a person."""
        return self.kind is PrincipalKind.HUMAN

    def has_any(self, roles: Iterable[Role]) -> bool:
        """True when the principal holds at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class PrincipalsFileError(ValueError):
    """The principals file is malformed; the server refuses to start."""


def parse_principals(document: Mapping[str, Any]) -> dict[str, Principal]:
    """Parses a principals TOML document into ``{token_sha256: Principal}``.

    The file holds one ``[[principal]]`` table per principal with ``name``,
    ``kind`` ("human" or "ai"), ``roles`` (list) and ``token_sha256``. Any
    mistake is fatal: a half-understood identity file must never start a
    server that moves money.
    """
    entries = document.get("principal")
    if not isinstance(entries, list) or not entries:
        raise PrincipalsFileError("no [[principal]] tables")
    by_hash: dict[str, Principal] = {}
    names: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"principal #{index + 1}"
        if not isinstance(entry, dict):
            raise PrincipalsFileError(f"{where}: not a table")
        unknown = set(entry) - {"name", "kind", "roles", "token_sha256"}
        if unknown:
            raise PrincipalsFileError(f"{where}: unknown keys {sorted(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PrincipalsFileError(f"{where}: name must match {_NAME_RE.pattern}")
        if name in names:
            raise PrincipalsFileError(f"{where}: duplicate name {name!r}")
        names.add(name)
        try:
            kind = PrincipalKind(entry.get("kind"))
        except ValueError:
            raise PrincipalsFileError(f"{name}: kind must be 'human' or 'ai'") from None
        raw_roles = entry.get("roles")
        if not isinstance(raw_roles, list) or not raw_roles:
            raise PrincipalsFileError(f"{name}: roles must be a non-empty list")
        try:
            roles = frozenset(Role(r) for r in raw_roles)
        except ValueError as exc:
            raise PrincipalsFileError(f"{name}: {exc}") from None
        token_hash = entry.get("token_sha256")
        if not isinstance(token_hash, str) or not _HASH_RE.match(token_hash.lower()):
            raise PrincipalsFileError(f"{name}: token_sha256 must be 64 hex characters")
        if token_hash.lower() in by_hash:
            raise PrincipalsFileError(f"{name}: token shared with another principal")
        by_hash[token_hash.lower()] = Principal(name, kind, roles)
    return by_hash

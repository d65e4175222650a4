"""Authentication: a bearer token, or a client certificate (mTLS) whose
subject CN or a SAN names a principal of the principals file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from govex_server.domain.errors import Category, GovexError
from govex_server.domain.principals import Principal
from govex_server.domain.rpcs import RpcSpec

Metadata = Iterable[tuple[str, str | bytes]] | None
# gRPC's auth context: property name -> values (bytes).
AuthContext = Mapping[str, Sequence[bytes]]
_CERT_NAMES = ("x509_common_name", "x509_subject_alternative_name")


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a bearer token, as the principals file stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Maps call credentials to a principal; the principals can be replaced
    while serving (SIGHUP), calls in flight keep the principal they had."""

    def __init__(self, principals_by_hash: Mapping[str, Principal]) -> None:
        self.replace(principals_by_hash)

    def replace(self, principals_by_hash: Mapping[str, Principal]) -> None:
        """Swaps the whole table at once (one assignment: no half-read state)."""
        by_name = {p.name: p for p in principals_by_hash.values()}
        self._tables = (dict(principals_by_hash), by_name)

    @property
    def principals(self) -> list[Principal]:
        """Every known principal."""
        return list(self._tables[1].values())

    def by_token_hash(self, digest: str) -> Principal | None:
        """The principal whose token hashes to ``digest`` (the console keeps
        the hash in its session, never the token), if it is still known."""
        return self._tables[0].get(digest)

    def authenticate(
        self,
        metadata: Metadata,
        peer: AuthContext | Callable[[], AuthContext | None] | None = None,
    ) -> Principal:
        """The caller, or UNAUTHENTICATED. A bearer token wins over a client
        certificate; a certificate counts only if it names a principal.
        ``peer`` may be a function: the certificate is then read only for a
        call without a token (most calls never pay for it)."""
        by_hash, by_name = self._tables
        header = ""
        for key, value in metadata or ():
            if key == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
                break
        if not header:
            if callable(peer):
                peer = peer()
            for name in _certificate_names(peer):
                if name in by_name:
                    return by_name[name]
            if peer and peer.get("x509_common_name"):
                raise GovexError(
                    Category.UNAUTHENTICATED,
                    "UNKNOWN_CERTIFICATE",
                    "the client certificate names no principal of the principals file",
                )
            raise GovexError(
                Category.UNAUTHENTICATED,
                "MISSING_CREDENTIALS",
                "no credentials: send 'authorization: Bearer <token>' metadata",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GovexError(
                Category.UNAUTHENTICATED,
                "BAD_CREDENTIALS",
                "the authorization metadata must be 'Bearer <token>'",
            )
        # A lookup by the token's SHA-256: its timing tells an attacker about
        # the hash of the guess, never about a stored token.
        principal = by_hash.get(token_sha256(token.strip()))
        if principal is not None:
            return principal
        raise GovexError(Category.UNAUTHENTICATED, "UNKNOWN_TOKEN", "the bearer token is not known")


def authorize(principal: Principal, rpc: str, spec: RpcSpec) -> None:
    """PERMISSION_DENIED unless ``principal`` holds one of the roles of ``rpc``."""
    if principal.has_any(spec.roles):
        return
    needed = ", ".join(sorted(r.value for r in spec.roles))
    raise GovexError(
        Category.PERMISSION_DENIED,
        "ROLE_REQUIRED",
        f"{rpc} needs one of the roles {needed}; "
        f"{principal.name} has {', '.join(sorted(r.value for r in principal.roles))}",
        metadata={"rpc": rpc, "requiredRoles": ",".join(sorted(r.value for r in spec.roles))},
    )


def _certificate_names(peer: AuthContext | None) -> list[str]:
    names: list[str] = []
    for key in _CERT_NAMES:
        for value in (peer or {}).get(key, ()):
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            names.append(text.removeprefix("DNS:").removeprefix("email:"))
    return names

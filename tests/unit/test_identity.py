"""Principals file parsing and bearer-token authentication."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from govex_server.api.auth import Authenticator, authorize, token_sha256
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.principals import (
    PrincipalKind,
    PrincipalsFileError,
    Role,
    parse_principals,
)
from govex_server.domain.rpcs import GOVERNANCE, RPCS

H = hashlib.sha256(b"secret-a").hexdigest()


def entry(**overrides: Any) -> dict[str, Any]:
    base = {"name": "alice", "kind": "human", "roles": ["proposer"], "token_sha256": H}
    base.update(overrides)
    return base


def test_parses_a_valid_file() -> None:
    parsed = parse_principals({"principal": [entry()]})
    assert parsed[H].name == "alice"
    assert parsed[H].kind is PrincipalKind.HUMAN
    assert parsed[H].roles == frozenset({Role.PROPOSER})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "no \\[\\[principal\\]\\]"),
        ({"principal": [entry(kind="robot")]}, "kind"),
        ({"principal": [entry(roles=["pope"])]}, "pope"),
        ({"principal": [entry(roles=[])]}, "roles"),
        ({"principal": [entry(token_sha256="abc")]}, "64 hex"),
        ({"principal": [entry(name="Bad Name")]}, "name"),
        ({"principal": [entry(), entry(token_sha256="f" * 64)]}, "duplicate name"),
        ({"principal": [entry(), entry(name="bob")]}, "token shared"),
        ({"principal": [entry(token="plain")]}, "unknown keys"),
    ],
)
def test_malformed_files_are_fatal(document: dict[str, Any], message: str) -> None:
    with pytest.raises(PrincipalsFileError, match=message):
        parse_principals(document)


AUTH = Authenticator(parse_principals({"principal": [entry()]}))


def code_of(metadata: list[tuple[str, str | bytes]], rpc: str = "ProposePlan") -> str:
    with pytest.raises(GovexError) as caught:
        authorize(AUTH.authenticate(metadata), rpc, RPCS[f"{GOVERNANCE}/{rpc}"])
    return f"{caught.value.category.value}/{caught.value.reason}"


def test_no_token_is_unauthenticated() -> None:
    assert code_of([]) == "UNAUTHENTICATED/MISSING_CREDENTIALS"


def test_not_bearer_is_unauthenticated() -> None:
    assert code_of([("authorization", "Basic abc")]) == "UNAUTHENTICATED/BAD_CREDENTIALS"


def test_unknown_token_is_unauthenticated() -> None:
    assert code_of([("authorization", "Bearer nope")]) == "UNAUTHENTICATED/UNKNOWN_TOKEN"


def test_known_token_without_the_role_is_permission_denied() -> None:
    assert (
        code_of([("authorization", "Bearer secret-a")], "ApprovePlan")
        == "PERMISSION_DENIED/ROLE_REQUIRED"
    )


def test_known_token_with_the_role_is_the_principal() -> None:
    principal = AUTH.authenticate([("authorization", "Bearer secret-a")])
    authorize(principal, "ProposePlan", RPCS[f"{GOVERNANCE}/ProposePlan"])
    assert principal.name == "alice"
    assert token_sha256("secret-a") == H


def test_every_contract_rpc_has_roles() -> None:
    from govex.execution.v1 import execution_service_pb2
    from govex.governance.v1 import governance_service_pb2

    for module in (governance_service_pb2, execution_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert f"{service.full_name}/{method.name}" in RPCS, method.full_name


def test_authentication_errors_are_category_unauthenticated() -> None:
    with pytest.raises(GovexError) as caught:
        AUTH.authenticate(None)
    assert caught.value.category is Category.UNAUTHENTICATED


def test_a_client_certificate_naming_a_principal_authenticates() -> None:
    principal = AUTH.authenticate([], {"x509_common_name": [b"alice"]})
    assert principal.name == "alice"
    san = AUTH.authenticate(
        [], {"x509_common_name": [b"x"], "x509_subject_alternative_name": [b"alice"]}
    )
    assert san.name == "alice"


def test_a_client_certificate_naming_nobody_is_unauthenticated() -> None:
    with pytest.raises(GovexError) as caught:
        AUTH.authenticate([], {"x509_common_name": [b"mallory"]})
    assert caught.value.reason == "UNKNOWN_CERTIFICATE"


def test_the_auditor_reads_the_audit_log_and_nothing_else() -> None:
    auditor = parse_principals({"principal": [entry(name="ada", roles=["auditor"])]})[H]
    authorize(auditor, "ListAuditRecords", RPCS[f"{GOVERNANCE}/ListAuditRecords"])
    with pytest.raises(GovexError):
        authorize(auditor, "GetPlan", RPCS[f"{GOVERNANCE}/GetPlan"])

"""TLS and mTLS: grpcurl (-cacert/-cert/-key) and the Python client reach the
server over TLS; a client certificate can name the principal instead of a
token; a certificate that names nobody, or that another CA signed, is
refused; a non-loopback address without TLS does not start."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from govex.controls.v1 import freeze_pb2
from govex_client.client import ClientConfig, GovexClient
from govex_client.errors import GovexRpcError
from govex_server.app import start
from govex_server.config import ConfigError, Settings
from tests.certs import Authority
from tests.conftest import HarnessFactory
from tests.support import PRINCIPALS_FILE, token

BIN = Path(sys.executable).parent
GOV = "govex.governance.v1.GovernanceService"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def grpcurl(
    target: str, *flags: str, method: str, data: object = None
) -> subprocess.CompletedProcess[str]:
    body = ["-d", json.dumps(data)] if data is not None else []
    return subprocess.run(
        [str(BIN / "grpcurl"), *flags, *body, target, method],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def curl(
    target: str, *flags: str, method: str, data: object = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(grpcurl, target, *flags, method=method, data=data)


@sqlite_only
async def test_tls_with_a_bearer_token(harness_factory: HarnessFactory, tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    server = ca.issue("govex server", server=True)
    h = await harness_factory(tls_cert_file=str(server.cert), tls_key_file=str(server.key))
    auth = ["-H", f"authorization: Bearer {token('victor')}"]
    state = await curl(h.target, "-cacert", str(ca.cert), *auth, method=f"{GOV}/GetGovernanceState")
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["state"]["mode_etag"]
    plaintext = await curl(h.target, "-plaintext", *auth, method=f"{GOV}/GetGovernanceState")
    assert plaintext.returncode != 0
    # A server certificate nobody vouches for is refused by the client.
    stranger = Authority(tmp_path, "another CA")
    untrusted = await curl(
        h.target, "-cacert", str(stranger.cert), *auth, method=f"{GOV}/GetGovernanceState"
    )
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
    config = ClientConfig(target=h.target, token=token("victor"), ca_file=str(ca.cert))
    async with GovexClient(config) as client:
        assert (await client.governance_state()).mode_etag


@sqlite_only
async def test_mtls_certificate_names_the_principal(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    ca = Authority(tmp_path)
    server = ca.issue("govex server", server=True)
    h = await harness_factory(
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        tls_client_ca_file=str(ca.cert),
    )
    carol = ca.issue("carol")
    tls = ["-cacert", str(ca.cert)]
    # grpcurl with carol's certificate and no token: carol may freeze.
    frozen = await curl(
        h.target,
        *tls,
        "-cert",
        str(carol.cert),
        "-key",
        str(carol.key),
        method=f"{GOV}/Freeze",
        data={"type": "FREEZE_TYPE_S3_ALERT_FREEZE", "reason": "mtls", "ttl": "600s"},
    )
    assert frozen.returncode == 0, frozen.stderr
    assert json.loads(frozen.stdout)["freeze"]["actor"] == "carol"
    # The Python client with a certificate whose SAN (not its CN) names victor.
    victor = ca.issue("some device", san_dns="victor")
    config = ClientConfig(
        target=h.target, ca_file=str(ca.cert), cert_file=str(victor.cert), key_file=str(victor.key)
    )
    async with GovexClient(config) as client:
        assert (await client.governance_state()).mode_etag
        # victor is a viewer: the certificate's principal is the one checked.
        with pytest.raises(GovexRpcError) as denied:
            await client.freeze(freeze_pb2.FREEZE_TYPE_FULL_FREEZE, "x")
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    # Signed by our CA but naming nobody: UNAUTHENTICATED.
    mallory = ca.issue("mallory")
    config = ClientConfig(
        target=h.target,
        ca_file=str(ca.cert),
        cert_file=str(mallory.cert),
        key_file=str(mallory.key),
    )
    async with GovexClient(config) as client:
        with pytest.raises(GovexRpcError) as unknown:
            await client.governance_state()
        assert (unknown.value.code, unknown.value.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNKNOWN_CERTIFICATE",
        )
    # Naming carol but signed by another CA: the handshake fails.
    forged = Authority(tmp_path, "forger CA").issue("carol")
    refused = await curl(
        h.target,
        *tls,
        "-cert",
        str(forged.cert),
        "-key",
        str(forged.key),
        method=f"{GOV}/GetGovernanceState",
    )
    assert refused.returncode != 0
    assert "authorization" not in refused.stdout
    # No client certificate at all: the handshake fails too.
    bare = await curl(
        h.target,
        *tls,
        "-H",
        f"authorization: Bearer {token('victor')}",
        method=f"{GOV}/GetGovernanceState",
    )
    assert bare.returncode != 0


def test_a_non_loopback_address_needs_tls_or_allow_insecure() -> None:
    with pytest.raises(ConfigError, match="not a loopback address and TLS is off"):
        Settings(listen="0.0.0.0:0", principals_file=PRINCIPALS_FILE).validate()
    with pytest.raises(ConfigError, match="tls_key_file"):
        Settings(listen="0.0.0.0:0", tls_cert_file="cert.pem").validate()
    Settings(listen="0.0.0.0:0", allow_insecure=True).validate()
    Settings(listen="[::1]:0").validate()
    # The console takes bearer tokens too.
    with pytest.raises(ConfigError, match=r"console_listen: 0\.0\.0\.0:8080 is not a loopback"):
        Settings(console_listen="0.0.0.0:8080").validate()
    Settings(console_listen="0.0.0.0:8080", allow_insecure=True).validate()
    Settings(console_listen="").validate()  # off


async def test_allow_insecure_starts_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(
        Settings(
            listen="0.0.0.0:0",
            allow_insecure=True,
            database_url=f"sqlite:///{tmp_path}/govex.db",
            principals_file=PRINCIPALS_FILE,
            paper_book_file=str(tmp_path / "book.db"),
        )
    )
    with caplog.at_level(logging.WARNING, logger="govex"):
        running = await start(settings)
    try:
        assert "WITHOUT TLS" in caplog.text
    finally:
        await running.stop(0.5)


@sqlite_only
async def test_the_console_is_https_with_the_tls_settings(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    import ssl

    ca = Authority(tmp_path)
    server = ca.issue("govex server", server=True)
    h = await harness_factory(tls_cert_file=str(server.cert), tls_key_file=str(server.key))
    assert h.running is not None and h.running.console is not None
    port = h.running.console.port

    async def login_page(context: ssl.SSLContext | None) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return answer

    trusting = ssl.create_default_context(cafile=str(ca.cert))  # host checked: 127.0.0.1
    answer = await login_page(trusting)
    assert answer.startswith(b"HTTP/1.1 200") and b"Bearer token" in answer
    # In clear text the TLS port answers nothing a browser would show.
    plain = await login_page(None)
    assert not plain.startswith(b"HTTP/1.1 200")

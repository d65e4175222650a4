"""How the server meets the network: gRPC core options (keepalive, pending
calls, concurrent streams) and TLS/mTLS credentials from the settings."""

from __future__ import annotations

from pathlib import Path

import grpc

from govex_server.config import ConfigError, Settings

# Keepalive: detect dead peers of long streams, and tolerate clients that
# ping every 10 s; a client pinging more often without data gets two strikes,
# then its connection is closed (enforcement). Requests stay at most 4 MiB
# (gRPC's default, stated here so that nobody raises it by accident).
# Pending-request limits are raised so that thousands of
# concurrent stream subscriptions are accepted instead of being cancelled by
# gRPC core before Python sees them (defaults 1,000 and 3,000).
MAX_REQUEST_BYTES = 4 * 1024 * 1024
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
    ("grpc.max_concurrent_streams", 20_000),
    ("grpc.so_reuseport", 0),
]


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' PEM files (None: plaintext)."""
    if not settings.tls:
        return None

    def read(name: str, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    cert = read("tls_cert_file", settings.tls_cert_file)
    key = read("tls_key_file", settings.tls_key_file)
    ca = (
        read("tls_client_ca_file", settings.tls_client_ca_file)
        if settings.tls_client_ca_file
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )

"""The govex client: ``GovexClient`` (async), ``SyncGovexClient``, and one
error type, ``GovexRpcError``, with the decoded AIP-193 details."""

from govex_client.client import (
    ClientConfig,
    GovexClient,
    GovexRpcError,
    RetryPolicy,
    SyncGovexClient,
    new_request_id,
)

__all__ = [
    "ClientConfig",
    "GovexClient",
    "GovexRpcError",
    "RetryPolicy",
    "SyncGovexClient",
    "new_request_id",
]

"""The operator console: server-rendered pages over the same services as the
gRPC API (roles, four eyes, audit and idempotency on one code path)."""

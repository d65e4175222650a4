"""Loads a unary gRPC method with h2load (Debian nghttp2-client) and parses
the result. h2load counts a gRPC error carried in trailers as a success, so
callers verify the outcome on the server side."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Load:
    """One h2load run."""

    requests_per_second: float
    succeeded: int
    failed: int
    seconds: float


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def run(
    url: str, message: bytes, requests: int, clients: int, streams: int, token: str = ""
) -> Load:
    """POSTs ``message`` ``requests`` times over ``clients`` connections with
    ``streams`` concurrent streams each."""
    headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    if token:
        headers += ["-H", f"authorization: Bearer {token}"]
    return _h2load(url, grpc_frame(message), requests, clients, streams, headers)


def run_http1(url: str, body: bytes, requests: int, clients: int, streams: int) -> Load:
    """POSTs a JSON ``body`` over HTTP/1.1 (for the FastAPI peer)."""
    return _h2load(
        url, body, requests, clients, streams, ["--h1", "-H", "content-type: application/json"]
    )


def _h2load(
    url: str, body: bytes, requests: int, clients: int, streams: int, options: list[str]
) -> Load:
    h2load = shutil.which("h2load")
    if h2load is None:
        raise RuntimeError("h2load is missing: apt-get install nghttp2-client (make bench does)")
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as data:
        data.write(body)
    command = [h2load, "-n", str(requests), "-c", str(clients), "-m", str(streams)]
    result = subprocess.run(
        [*command, "-d", data.name, *options, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    Path(data.name).unlink()
    out = result.stdout
    finished = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    status = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if finished is None or status is None:
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[finished.group(2)]
    seconds = float(finished.group(1)) * scale
    return Load(float(finished.group(3)), int(status.group(1)), int(status.group(2)), seconds)

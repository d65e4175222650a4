"""How the CLI ends: one line with the status, the reason and a hint (never
a traceback), and an exit code per class of status so scripts can branch."""

from __future__ import annotations

import grpc

from govex_client.errors import GovexRpcError

OK = 0
USAGE = 2  # a bad command line (also argparse's own code)
REFUSED = 3  # the request is wrong or not allowed now (fix it, do not retry as is)
DENIED = 4  # who you are, or what you may do
NOT_FOUND = 5
CONFLICT = 6  # someone changed it first: read it again
UNAVAILABLE = 7  # try again later
FAILED = 8  # the server failed

EXIT_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: REFUSED,
    grpc.StatusCode.FAILED_PRECONDITION: REFUSED,
    grpc.StatusCode.OUT_OF_RANGE: REFUSED,
    grpc.StatusCode.UNAUTHENTICATED: DENIED,
    grpc.StatusCode.PERMISSION_DENIED: DENIED,
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    grpc.StatusCode.ABORTED: CONFLICT,
    grpc.StatusCode.ALREADY_EXISTS: CONFLICT,
    grpc.StatusCode.UNAVAILABLE: UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: UNAVAILABLE,
}


class UsageError(Exception):
    """A command line the CLI cannot act on (exit 2)."""


def exit_code(error: GovexRpcError) -> int:
    """The exit code of a failed call."""
    return EXIT_CODES.get(error.code, FAILED)


def hint(error: GovexRpcError, target: str, has_token: bool) -> str:
    """What to do about ``error``, in a few words."""
    code = error.code
    if code is grpc.StatusCode.UNAUTHENTICATED:
        if not has_token:
            return "pass --token TOKEN or set GOVEX_TOKEN (make run prints the dev tokens)"
        return "the token is not known to the server: check --token / GOVEX_TOKEN"
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return "your principal lacks the role for this; ask an admin or use another token"
    if code is grpc.StatusCode.ABORTED:
        return "it changed since you read it: show it again and pass the new --etag"
    if code is grpc.StatusCode.UNAVAILABLE:
        if error.retry_delay is not None:
            return f"try again in {error.retry_delay.total_seconds():g} s"
        return f"is govex-server running at {target}? (GOVEX_TARGET / --target)"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer in time: raise --timeout, or check the server"
    if code is grpc.StatusCode.NOT_FOUND:
        return "check the name (list them: govex plans list, govex freezes, govex executions)"
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return "not allowed in the current state: govex state shows it"
    return ""


def describe(error: GovexRpcError, target: str, has_token: bool) -> list[str]:
    """The lines printed for ``error`` on stderr: the status line, each bad
    field, and the hint."""
    lines = [f"govex: {error.code.name} {error.reason}: {error.message}".replace("  ", " ")]
    lines += [f"  field {field}: {why}" for field, why in error.field_violations]
    lines += [f"  {kind} {subject}: {why}" for kind, subject, why in error.precondition_violations]
    if text := hint(error, target, has_token):
        lines.append(f"  hint: {text}")
    return lines

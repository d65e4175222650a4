"""Which fields an Update request changes (AIP-134 field masks)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from govex_server.domain.errors import invalid_field


def resolve(
    paths: Sequence[str], updatable: Sequence[str], present: Collection[str]
) -> frozenset[str]:
    """The fields to change: the mask's paths (each must be updatable), every
    updatable field for ``*``, or, with no mask, the updatable fields the
    request set (``present``)."""
    if not paths:
        return frozenset(f for f in updatable if f in present)
    if list(paths) == ["*"]:
        return frozenset(updatable)
    for i, path in enumerate(paths):
        if path not in updatable:
            raise invalid_field(
                f"update_mask.paths[{i}]",
                f"{path[:60]!r} cannot be updated; updatable: {', '.join(updatable)} (or *)",
            )
    return frozenset(paths)

"""What an input may hold: bounds every reader checks before anything is stored or computed.

A record beyond them is an invalid record (refused, or skipped with ``--skip-invalid``), never a
traceback, a crash in native code, or a registry bloated by one string.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import orjson

ID_MAX = 2**63 - 1  # the registry keeps ids as signed 64-bit integers
INT32_MAX = 2**31 - 1  # counts (keypoints) are 32-bit columns
NAME_MAX = 128  # a class name (the label class key column)
PATH_MAX_BYTES = 4096  # a file name, as the file systems dsgen runs on allow
PATH_PART_MAX_BYTES = 255
TEXT_MAX = 65_536  # a caption, a supercategory
JSON_MAX_BYTES = 1 << 20  # the unknown keys or attributes of one record, or a file's header
# Geometry may leave its image by at most the image's own size on each side: more is no
# annotation of it (and pycocotools' rasteriser crashes on coordinates near 1e10).
OUTSIDE = 1.0
COORD_MAX = 1e7  # where the image's size is not known
# An image side past this is no photograph, scan or satellite tile anyone annotates, and its masks
# could not be decoded in memory.
DIMENSION_MAX = 100_000


def has_nul(value: Any) -> bool:
    """Some string in ``value`` (a JSON value: keys included) holds a NUL, which no registry text can store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    return False


def is_id(v: Any) -> TypeGuard[int]:
    return type(v) is int and -ID_MAX - 1 <= v <= ID_MAX


def path_problem(name: str) -> str | None:
    """Why ``name`` cannot be stored as a file name, or None."""
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > PATH_MAX_BYTES:
        return f"longer than {PATH_MAX_BYTES} bytes ({len(encoded)})"
    longest = max((len(p.encode("utf-8", "surrogatepass")) for p in name.replace("\\", "/").split("/")), default=0)
    if longest > PATH_PART_MAX_BYTES:
        return f"a part of the path is longer than {PATH_PART_MAX_BYTES} bytes ({longest})"
    if "\x00" in name or any(ord(ch) < 32 for ch in name):
        return "contains a control character"
    return None


def json_problem(value: Any, limit: int = JSON_MAX_BYTES) -> str | None:
    """Why ``value`` is too large to keep as JSON, or None."""
    try:
        size = len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        return f"not storable as JSON ({exc})"
    return f"{size} bytes of JSON, more than {limit}" if size > limit else None


def coordinate_range(extent: int | None) -> tuple[float, float]:
    """The accepted range of x (``extent`` = width) or y (height) coordinates."""
    if not extent:
        return -COORD_MAX, COORD_MAX
    return -OUTSIDE * extent, (1 + OUTSIDE) * extent

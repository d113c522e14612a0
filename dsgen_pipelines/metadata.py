"""Metadata helpers shared by the asset modules."""

import base64
from collections.abc import Iterable, Sequence


def png_markdown(title: str, png: bytes) -> str:
    """A PNG inline as a data: URI under a heading: Dagster's metadata has no image type."""
    return f"### {title}\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; cells are shown as they are given (format numbers before)."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

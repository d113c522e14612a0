"""Metadata helpers shared by the asset modules."""

import base64


def png_markdown(title: str, png: bytes) -> str:
    """A PNG inline as a data: URI under a heading: Dagster's metadata has no image type."""
    return f"### {title}\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"

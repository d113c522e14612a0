"""Tracks: one physical object followed across the frames of a video or a burst of images (re-identification).

Human tracks come from imports (CVAT ``track_id``, scoped by their source file) or are made by
hand; the linker proposes model-made ones from box overlap and vector similarity, which people
then accept or reject. The quality measure says how well the linker recovers known tracks, with
or without a given embedding.

- ``objects``: objects as tracking sees them (box, sequence, frame number).
- ``tracks``: :func:`create_track`, :func:`list_tracks`, :func:`review_tracks` (accept / reject).
- ``link``: :func:`link_objects` (the linker, no I/O) and :func:`propose_tracks` (``tracks link``).
- ``vectors``: :func:`histogram_vectors`, the colour-histogram baseline.
- ``quality``: :func:`link_quality`, :func:`score_tracks`.
- ``assignment``: the Hungarian and greedy matchings.
"""

from dsgen_core.tracking.link import Chain, LinkParams, LinkResult, link_objects, propose_tracks
from dsgen_core.tracking.quality import LinkQuality, TrackScore, link_quality, score_tracks
from dsgen_core.tracking.tracks import ReviewResult, TrackInfo, create_track, list_tracks, review_tracks
from dsgen_core.tracking.vectors import histogram_vectors

__all__ = [
    "Chain",
    "LinkParams",
    "LinkQuality",
    "LinkResult",
    "ReviewResult",
    "TrackInfo",
    "TrackScore",
    "create_track",
    "histogram_vectors",
    "link_objects",
    "link_quality",
    "list_tracks",
    "propose_tracks",
    "review_tracks",
    "score_tracks",
]

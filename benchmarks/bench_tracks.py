"""Re-identification: the share of objects ``tracks link`` puts in their true track, by what it compares.

    python benchmarks/bench_tracks.py                                   # 40 sequences, strides 1 3 5 7, overlays 1 8
    python benchmarks/bench_tracks.py --weights data/registry/models/p1/m1/weights/best.pt   # + the default encoder
    python benchmarks/bench_tracks.py --provider clip=my_module:make_provider

- Data: the demo generator's sequences (8 frames of 2-4 moving, turning shapes each, CVAT track
  ids; some tracks start or end mid-sequence), imported into a throwaway SQLite registry.
- Each provider links the tracked objects again, their track ids withheld
  (:func:`dsgen_core.tracking.link_quality`: exactly what ``dsgen tracks link`` runs), keeping only
  every STRIDE-th frame: at stride 1 the shapes move a few pixels between linked frames, at 7 up
  to a shape's size, the case of a video sampled with ``--every``.
- Overlay K: the frames of K sequences are linked as if they were one (frame n of each, stacked),
  so K times the objects share a frame and their boxes cross: where geometry alone gets lost and
  appearance has to tell objects of one class apart. The demo's own sequences (overlay 1) hold 2-4
  objects of 3 classes, few enough that geometry and class nearly suffice.
- Providers: ``overlap`` (box IoU and class only), ``constant`` (every object the same vector: a
  provider that knows nothing; the linker centres vectors before comparing them, so it adds
  nothing and scores as ``overlap``: the control), ``histogram`` (the colour-histogram baseline),
  with ``--weights BEST_PT`` ``default`` (dsgen's default encoder, the model's backbone) and
  ``default+colour`` (both side by side, what ``tracks link`` compares by default with an
  embedding version), and any given as ``--provider NAME=MODULE:FACTORY``, where
  ``FACTORY(session, project, storage)`` returns ``ids -> {id: vector}`` (an embedding version's
  ``object_vectors``, a model run on the crops, ...). Importable too: ``run(providers=...)``.
- accuracy: objects in the proposed track paired one-to-one with their true track / all objects
  (IDF1 over fixed detections; see dsgen_core/tracking/quality.py for purity and completeness).

Results go to benchmarks/out/bench_tracks.json as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support: the tests' import helper
OUT = HERE / "out"

import numpy as np  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from dsgen_core.config import load_settings  # noqa: E402
from dsgen_core.demo.synth import generate_demo_dataset  # noqa: E402
from dsgen_core.query import compile_query  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.registry.projects import get_project  # noqa: E402
from dsgen_core.registry.schema import Project  # noqa: E402
from dsgen_core.storage import open_storage  # noqa: E402
from dsgen_core.storage.base import Storage  # noqa: E402
from dsgen_core.tracking import LinkParams, histogram_vectors, link_objects, link_quality, score_tracks  # noqa: E402
from dsgen_core.tracking.link import VectorProvider  # noqa: E402
from dsgen_core.tracking.objects import load_objects  # noqa: E402
from support import import_file  # noqa: E402

# (session, project, storage) -> the provider link_quality calls, or None for overlap alone.
ProviderFactory = Callable[[Session, Project, Storage], VectorProvider | None]

BUILTIN: dict[str, ProviderFactory] = {
    "overlap": lambda s, p, st: None,
    "constant": lambda s, p, st: (lambda ids: {i: np.ones(1) for i in ids}),
    "histogram": lambda s, p, st: (lambda ids: histogram_vectors(s, p, st, ids)),
}


def run(*, providers: dict[str, ProviderFactory] | None = None, sequences: int = 40, strides: Sequence[int] = (1, 3, 5, 7),
        overlays: Sequence[int] = (1, 8), seed: int = 0, params: LinkParams | None = None,
        work: Path | None = None) -> list[dict[str, Any]]:
    """One row per overlay, stride and provider: the quality scores and the seconds linking took."""
    providers = providers or BUILTIN
    params = params or LinkParams()
    tmp = work or Path(tempfile.mkdtemp(prefix="dsgen-bench-tracks-"))
    try:
        ds = generate_demo_dataset(tmp / "demo", n_images=8 * sequences, n_sequences=sequences, seed=seed)
        reg = Registry(load_settings(home=tmp / "home"))
        storage = open_storage(reg.settings.storage_root)
        import_file(reg, ds.annotations_path, images=ds.images_dir, project="demo")
        rows = []
        with reg.session() as s:
            project = get_project(s, "demo")
            vectors = {name: factory(s, project, storage) for name, factory in providers.items()}
            for overlay in overlays:
                for stride in strides:
                    for name, provider in vectors.items():
                        if overlay == 1:  # exactly what `tracks link` runs, through the library's own measure
                            row = link_quality(s, project, vectors=provider, params=params, stride=stride).to_dict()
                        else:
                            row = _overlaid(s, project, provider, params, stride, overlay)
                        rows.append({"overlay": overlay, "stride": stride, "provider": name, **row})
        reg.dispose()
        return rows
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _overlaid(session: Session, project: Project, provider: VectorProvider | None, params: LinkParams, stride: int,
              overlay: int) -> dict[str, Any]:
    """link_quality with the frames of ``overlay`` sequences at a time linked as one sequence."""
    t0 = time.perf_counter()
    ids = list(session.scalars(compile_query("has:track", project_id=project.id, level="object", session=session)))
    objs = [o for o in load_objects(session, ids).values()
            if o.track_id is not None and o.box is not None and o.frame is not None and o.frame % stride == 0]
    group = {q: i // overlay for i, q in enumerate(sorted({str(o.sequence) for o in objs}))}
    stacked = [dataclasses.replace(o, sequence=f"overlay:{group[str(o.sequence)]}", track_id=None) for o in objs]
    vecs = provider([o.id for o in objs]) if provider is not None else None
    chains = link_objects(stacked, vecs, params)
    score = score_tracks({o.id: o.track_id for o in objs}, [c.members for c in chains])
    return {**score.to_dict(), "stride": stride, "links": sum(len(c.link_scores) for c in chains),
            "seconds": round(time.perf_counter() - t0, 3)}


def _factory(spec: str) -> tuple[str, ProviderFactory]:
    name, _, target = spec.partition("=")
    module, _, attr = target.partition(":")
    if not (name and module and attr):
        raise SystemExit(f"--provider wants NAME=MODULE:FACTORY, not {spec!r}")
    return name, getattr(importlib.import_module(module), attr)


def _default_encoder(weights: Path, colour: bool = False) -> ProviderFactory:
    """dsgen's default encoder (a trained model's backbone) on the objects' boxes, computed now; with
    ``colour``, beside the boxes' colour histograms, as ``tracks link`` compares them by default."""
    from dsgen_core.embeddings.encoders import build_encoder
    from dsgen_core.embeddings.sync import embed_objects
    from dsgen_core.tracking.vectors import joined

    encoder = build_encoder("model", weights=weights, model_version="bench")

    def factory(s: Session, p: Project, st: Storage) -> VectorProvider:
        def embedded(ids: Sequence[int]) -> dict[int, np.ndarray]:
            return embed_objects(s, p, ids, encoder=encoder, storage=st)

        return joined(embedded, lambda ids: histogram_vectors(s, p, st, ids)) if colour else embedded

    return factory


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=40, help="demo sequences of 8 frames (default 40)")
    ap.add_argument("--strides", type=int, nargs="+", default=[1, 3, 5, 7])
    ap.add_argument("--overlays", type=int, nargs="+", default=[1, 8], help="sequences linked as one (see above)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--provider", action="append", default=[], metavar="NAME=MODULE:FACTORY",
                    help="another vector provider to compare (repeatable)")
    ap.add_argument("--weights", type=Path, metavar="BEST_PT",
                    help="a trained dsgen model's checkpoint: adds provider 'default', dsgen's default encoder "
                         "(the model's backbone) run on the boxes (bench_encoders.py --keep-weights, or a demo's m1)")
    ap.add_argument("--only", nargs="+", help="run only these providers (names)")
    ap.add_argument("--matching", choices=["hungarian", "greedy"], default="hungarian")
    ap.add_argument("--iou-weight", type=float, default=LinkParams.iou_weight)
    ap.add_argument("--min-score", type=float, default=LinkParams.min_score)
    ap.add_argument("--max-shift", type=float, default=LinkParams.max_shift, help="0: no limit")
    args = ap.parse_args(argv)
    providers = dict(BUILTIN)
    providers.update(_factory(p) for p in args.provider)
    if args.weights is not None:
        providers["default"] = _default_encoder(args.weights)
        providers["default+colour"] = _default_encoder(args.weights, colour=True)
    if args.only:
        providers = {k: v for k, v in providers.items() if k in args.only}
    params = LinkParams(iou_weight=args.iou_weight, min_score=args.min_score, max_shift=args.max_shift or None,
                        matching=args.matching)
    rows = run(providers=providers, sequences=args.sequences, strides=args.strides, overlays=args.overlays,
               seed=args.seed, params=params)
    first = rows[0]
    print(f"tracks link on {first['objects']} tracked objects in {first['true_tracks']} tracks "
          f"({args.sequences} demo sequences, seed {args.seed}; {args.matching}, iou_weight {args.iou_weight}, "
          f"min_score {args.min_score}, max_shift {args.max_shift or 'none'})")
    print(f"  {'overlay':>7} {'stride':>6} {'provider':<12} {'objects':>7} {'accuracy':>8} {'purity':>7} {'complete':>8} "
          f"{'exact':>9} {'split':>5} {'merged':>6} {'seconds':>7}")
    for r in rows:
        print(f"  {r['overlay']:>7} {r['stride']:>6} {r['provider']:<12} {r['objects']:>7} {r['accuracy']:>8.3f} {r['purity']:>7.3f} "
              f"{r['completeness']:>8.3f} {str(r['exact']) + '/' + str(r['true_tracks']):>9} {r['split']:>5} "
              f"{r['merged']:>6} {r['seconds']:>7.3f}")
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_tracks.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Similarity search with query pushdown, and near-duplicate groups (stored, queryable, kept in one split)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import orjson
from PIL import Image
from sqlalchemy import select

from dsgen_core.query import run_query
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAsset,
    LabelClass,
)
from dsgen_core.registry.tagging import add_tags
from support import import_file


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output.strip().splitlines()[-1])


def _embedded(registry: Registry, cli: Any, data: Path, weights: Path, images: Path | None = None) -> None:
    import_file(registry, data / "annotations" / "instances_default.json", images=images or data / "images")
    _json(cli.invoke("embed", "create", "vis", "--project", "p", "--encoder", "onnx", "--weights", weights, "--json"))
    _json(cli.invoke("embed", "sync", "--project", "p", "--json"))


def test_similar_objects_with_pushdown_and_sql_terms(registry: Registry, cli: Any, demo_data: Path,
                                                     onnx_encoder: Path) -> None:
    _embedded(registry, cli, demo_data, onnx_encoder)
    with registry.session() as s:
        oid, cls = s.execute(select(Annotation.id, LabelClass.key).join(LabelClass).where(
            Annotation.bbox_w.is_not(None)).order_by(Annotation.id).limit(1)).one()
        total = len(list(s.scalars(select(Annotation.id).where(Annotation.bbox_w.is_not(None)))))
    res = _json(cli.invoke("similar", oid, "--project", "p", "--top-k", "5", "--json"))
    hits = res["hits"]
    assert len(hits) == 5 and oid not in [h["object_id"] for h in hits]
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert all(h["file_name"] and h["image_id"] for h in hits)

    # Everything at once, brute force: the same nearest neighbours in the same order.
    everything = _json(cli.invoke("similar", oid, "--project", "p", "--top-k", total, "--json"))["hits"]
    assert [h["object_id"] for h in everything[:5]] == [h["object_id"] for h in hits]
    assert len(everything) == total - 1

    # category maps to Chroma's where; every hit is of the class.
    by_class = _json(cli.invoke("similar", oid, "--project", "p", "--query", f"category:{cls}", "--json"))
    assert by_class["where"]["category_id"]["$in"] and not by_class["sql_terms"]
    assert by_class["hits"] and {h["category"] for h in by_class["hits"]} == {cls}

    # A tag has no Chroma metadata: the registry answers it, and only tagged objects come back.
    with registry.session() as s:
        project = get_project(s, "p")
        tagged = [h["object_id"] for h in everything[3:9]]
        add_tags(s, project, ["pick"], asset_ids=tagged, level="object", actor="test")
    picked = _json(cli.invoke("similar", oid, "--project", "p", "--query", "tag:pick", "--top-k", "3", "--json"))
    assert picked["sql_terms"] == ["tag:pick"]
    assert [h["object_id"] for h in picked["hits"]] == tagged[:3]
    with registry.session() as s:
        assert set(tagged) <= set(run_query(s, get_project(s, "p"), "tag:pick", level="object"))
    none = _json(cli.invoke("similar", oid, "--project", "p", "--query", "category:no-such-class", "--json"))
    assert none["hits"] == []


def test_similar_by_image_and_errors(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path,
                                     tmp_path: Path) -> None:
    _embedded(registry, cli, demo_data, onnx_encoder)
    with registry.session() as s:
        oid, uri, x, y, w, h = s.execute(select(Annotation.id, Asset.storage_uri, Annotation.bbox_x, Annotation.bbox_y,
                                                Annotation.bbox_w, Annotation.bbox_h).join(Asset).where(
            Annotation.bbox_w.is_not(None)).order_by(Annotation.id).limit(1)).one()
    crop = tmp_path / "crop.png"
    with Image.open(uri) as im:
        im.convert("RGB").crop((int(x), int(y), int(x + w), int(y + h))).save(crop)
    res = _json(cli.invoke("similar", "--image", crop, "--project", "p", "--top-k", "3", "--json"))
    # The crop lacks the context margin the encoder adds around a box: near, not identical.
    assert res["hits"][0]["object_id"] == oid and res["hits"][0]["distance"] < 0.1
    bad = cli.invoke("similar", "--image", tmp_path / "missing.png", "--project", "p")
    assert bad.exit_code == 2 and "missing.png" in bad.output
    neither = cli.invoke("similar", "--project", "p")
    assert neither.exit_code == 2 and "exactly one" in neither.output
    unknown = cli.invoke("similar", "99999999", "--project", "p")
    assert unknown.exit_code == 2 and "no such object" in unknown.output


def test_near_duplicates_grouped_queryable_and_kept_in_one_split(registry: Registry, cli: Any, demo_data: Path,
                                                                 onnx_encoder: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_data, data_dir)
    ann = data_dir / "annotations" / "instances_default.json"
    data = json.loads(ann.read_text())
    # Two near copies: another file name, re-encoded (other bytes, same picture).
    copies = []
    for k, im in enumerate(data["images"][:2]):
        name = f"copies/near_{k}.jpg"
        (data_dir / "images" / "copies").mkdir(exist_ok=True)
        with Image.open(data_dir / "images" / im["file_name"]) as src:
            src.convert("RGB").save(data_dir / "images" / name, quality=70)
        copies.append((im["file_name"], name))
        data["images"].append({**im, "id": 5000 + k, "file_name": name})
    # And one exact copy.
    shutil.copy(data_dir / "images" / data["images"][3]["file_name"], data_dir / "images" / "copies" / "exact.jpg")
    data["images"].append({**data["images"][3], "id": 6000, "file_name": "copies/exact.jpg"})
    ann.write_text(json.dumps(data))
    _embedded(registry, cli, data_dir, onnx_encoder)

    rep = _json(cli.invoke("duplicates", "--project", "p", "--threshold", "0.002", "--json"))
    assert rep["exact_groups"] == 1 and rep["images_in_exact_groups"] == 2
    near_sets = [set(g["files"]) for g in rep["near"]]
    for original, copy in copies:
        assert any({original, copy} <= g for g in near_sets), (original, copy, rep["near"])
    with registry.session() as s:
        project = get_project(s, "p")
        found = set(s.scalars(select(Asset.file_name).where(Asset.id.in_(
            run_query(s, project, "has:near_duplicate")))))
    assert {c for _o, c in copies} <= found
    insight = _json(cli.invoke("insights", "--project", "p", "--which", "duplicates", "--json"))["duplicates"]
    assert insight["near_groups"] >= 2 and insight["images_with_near_duplicates"] >= 4

    # A version's split keeps each near-duplicate group together, whatever the seed.
    for seed in range(4):
        tag = f"s{seed}"
        assert cli.invoke("version", "create", tag, "--project", "p", "--seed", seed).exit_code == 0
        assert cli.invoke("version", "freeze", tag, "--project", "p").exit_code == 0
        with registry.session() as s:
            split = dict(s.execute(select(Asset.file_name, DatasetSplit.split).join(
                DatasetVersionAsset, DatasetVersionAsset.asset_id == Asset.id).join(
                DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id).join(
                DatasetVersion, DatasetVersion.id == DatasetSplit.dataset_version_id)
                .where(DatasetVersion.version_tag == tag)).all())
        for original, copy in copies:
            assert split[original] == split[copy], (seed, original, copy)


def test_an_encoder_that_sees_no_difference_names_no_near_duplicates(registry: Registry, cli: Any, demo_data: Path,
                                                                    onnx_encoder: Path) -> None:
    """An undertrained model puts every image at one point: that is no evidence of copies."""
    import numpy as np

    from dsgen_core.embeddings.search import find_duplicates
    from dsgen_core.embeddings.store import open_store
    from dsgen_core.embeddings.versions import get_version

    _embedded(registry, cli, demo_data, onnx_encoder)
    store = open_store(registry.settings)
    with registry.session() as s:
        ev = get_version(s, get_project(s, "p"), "vis", level="image")
        ids = list(s.scalars(select(Asset.id)))
    col = store.collection(ev)
    store.upsert(col, ids, np.ones((len(ids), ev.dimension), np.float32), [{"image_id": i} for i in ids])
    with registry.session() as s:
        rep = find_duplicates(s, get_project(s, "p"), store=store, version="vis")
    assert rep.near == [] and rep.threshold == 0.0 and rep.images == len(ids)

"""The platform's writers on S3 (moto's HTTP server), on SQLite and PostgreSQL: import, export, thumbnails, freeze."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from PIL import Image
from pycocotools import mask as mask_utils
from sqlalchemy import select

from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset
from dsgen_core.storage import open_storage
from dsgen_core.thumbnails import make_thumbnails
from support import BUCKET, import_file

DM = "datumaro/tests/assets/coco_dataset/coco_instances"


def _objects(s3: Any, root: str, folder: str) -> list[str]:  # noqa: ANN401
    prefix = root.removeprefix(f"s3://{BUCKET}/")
    resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/{folder}/")
    return [o["Key"].removeprefix(f"{prefix}/") for o in resp.get("Contents", [])]


def test_coco_masks_thumbnails_and_export_go_through_s3(
    s3_registry: Registry, s3_root: str, s3: Any, corpus: Path, cli: Any, tmp_path: Path,  # noqa: ANN401
) -> None:
    src = corpus / DM / "annotations/instances_val.json"
    result = import_file(s3_registry, src, images=corpus / DM / "images/val", project="p")
    assert result.summary()["masks"] == 1

    masks = _objects(s3, s3_root, "masks")
    with s3_registry.session() as s:
        mask_uris = list(s.scalars(select(Annotation.mask_uri).where(Annotation.mask_uri.is_not(None))))
    assert [f"{s3_root}/{k}" for k in masks] == mask_uris
    assert not (tmp_path / "registry" / "masks").exists(), "nothing written to the local default root"

    with s3_registry.session() as s:
        counts = make_thumbnails(s, get_project(s, "p"), storage=open_storage(s3_registry.settings.storage_root))
    assert counts.to_dict() == {"created": 1, "failed": 0}
    [thumb] = _objects(s3, s3_root, "thumbnails")
    with s3_registry.session() as s:
        assert s.scalar(select(Asset.thumbnail_uri)) == f"{s3_root}/{thumb}"
    body = s3.get_object(Bucket=BUCKET, Key=f"{s3_root.removeprefix(f's3://{BUCKET}/')}/{thumb}")["Body"].read()
    assert Image.open(io.BytesIO(body)).size == (5, 10)

    # The CLI in a fresh process finds the storage from DSGEN_STORAGE and the endpoint from the env alone.
    assert cli.env["DSGEN_STORAGE"] == s3_root
    out = tmp_path / "export.json"
    cli("export", "coco", out, "--project", "p", check=True)
    exported = orjson.loads(out.read_bytes())
    source = orjson.loads(src.read_bytes())
    [want] = [a for a in source["annotations"] if isinstance(a["segmentation"], dict)]
    [got] = [a for a in exported["annotations"] if isinstance(a["segmentation"], dict)]
    h, w = want["segmentation"]["size"]
    decode = lambda seg: mask_utils.decode(mask_utils.frPyObjects(seg, h, w))  # noqa: E731
    assert np.array_equal(decode(got["segmentation"]), decode(want["segmentation"]))
    assert decode(want["segmentation"]).sum() == 20

    # Freezing a version hashes the mask bytes, read back from S3.
    assert cli.invoke("version", "create", "v1", "--project", "p").exit_code == 0
    frozen = cli.invoke("version", "freeze", "v1", "--project", "p", "--json")
    assert frozen.exit_code == 0, frozen.output
    assert orjson.loads(frozen.output)["content_hash"]


def test_cli_reports_a_missing_bucket_without_a_traceback(
    s3_registry: Registry, corpus: Path, cli: Any, monkeypatch: Any,  # noqa: ANN401
) -> None:
    cli.env["DSGEN_STORAGE"] = "s3://no-such-bucket/p"
    proc = cli("import", "coco", corpus / DM / "annotations/instances_val.json", "--images", corpus / DM / "images/val")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error: S3 bucket 'no-such-bucket' does not exist at http://127.0.0.1:")
    assert "Traceback" not in proc.stderr
    with s3_registry.session() as s:
        assert s.scalar(select(Asset.id)) is None, "the import is all-or-nothing"

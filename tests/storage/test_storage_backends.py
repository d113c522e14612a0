"""The Storage interface, the same tests on a local folder and on S3 over HTTP (moto's server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.storage import LocalStorage, Storage, open_storage
from dsgen_core.storage.masks import MaskStore
from dsgen_core.storage.s3 import S3Storage
from support import BUCKET, MotoServer


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    return open_storage(request.getfixturevalue("s3_root"))


def test_bytes_round_trip_exists_delete(store: Storage) -> None:
    uri = store.write_bytes("masks/ab/cd/1.rle", b'{"size": [1, 1]}')
    assert store.key_of(uri) == "masks/ab/cd/1.rle"
    assert store.read_bytes("masks/ab/cd/1.rle") == b'{"size": [1, 1]}'
    assert store.exists("masks/ab/cd/1.rle") and not store.exists("masks/ab/cd/2.rle")
    store.write_bytes("masks/ab/cd/1.rle", b"new")
    assert store.read_bytes(store.key_of(uri)) == b"new"
    store.delete("masks/ab/cd/1.rle")
    store.delete("masks/ab/cd/1.rle")  # deleting what is gone is fine
    assert not store.exists("masks/ab/cd/1.rle")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("masks/ab/cd/1.rle")


def test_file_round_trip(store: Storage, tmp_path: Path) -> None:
    src = tmp_path / "export.json"
    src.write_bytes(os.urandom(300_000))
    uri = store.write_file("exports/v1/export.json", src)
    assert store.key_of(uri) == "exports/v1/export.json"
    got = store.download("exports/v1/export.json", tmp_path / "back" / "deeper" / "export.json")
    assert got.read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        store.download("exports/v1/missing.json", tmp_path / "missing.json")


def test_list_and_delete_tree_take_folders(store: Storage) -> None:
    for key in ("exports/v1/a.json", "exports/v1/sub/b.json", "exports/v10/c.json", "masks/00/00/1.rle"):
        store.write_bytes(key, key.encode())
    assert store.list("exports/v1") == ["exports/v1/a.json", "exports/v1/sub/b.json"]
    assert store.list("exports/v1/") == store.list("exports/v1")
    assert store.list() == ["exports/v1/a.json", "exports/v1/sub/b.json", "exports/v10/c.json", "masks/00/00/1.rle"]
    assert store.list("nothing/here") == []
    store.delete_tree("exports/v1")
    assert store.list() == ["exports/v10/c.json", "masks/00/00/1.rle"]
    store.delete_tree("nothing/here")


def test_keys_cannot_escape_the_root(store: Storage) -> None:
    with pytest.raises(ValueError, match="escapes"):
        store.write_bytes("../outside", b"x")


def test_s3_uris_name_bucket_and_prefix(s3_root: str) -> None:
    store = S3Storage(s3_root + "/")
    assert store.root_uri == s3_root
    assert store.uri("masks/ab/cd/7.rle") == f"{s3_root}/masks/ab/cd/7.rle"
    assert store.key_of(store.uri("masks/ab/cd/7.rle")) == "masks/ab/cd/7.rle"
    # A local registry's URIs are bare keys: after copying the files into the bucket they still resolve.
    assert store.key_of("masks/ab/cd/7.rle") == "masks/ab/cd/7.rle"
    with pytest.raises(DsgenError, match="outside the configured storage"):
        store.key_of(f"s3://{BUCKET}/elsewhere/masks/1.rle")
    bare = S3Storage(f"s3://{BUCKET}")
    assert bare.uri("a/b") == f"s3://{BUCKET}/a/b" and bare.key_of(f"s3://{BUCKET}/a/b") == "a/b"
    for bad in ("s3://", "s3:///prefix", "/local/path"):
        with pytest.raises(DsgenError, match="S3 URI"):
            S3Storage(bad)
    with pytest.raises(DsgenError, match="is in S3 but the configured storage is the local folder"):
        LocalStorage("/tmp/x").key_of(store.uri("masks/1.rle"))


def test_s3_objects_land_under_the_prefix(s3_root: str, s3: Any) -> None:  # noqa: ANN401
    S3Storage(s3_root).write_bytes("thumbnails/ab/x.jpg", b"jpg")
    prefix = s3_root.removeprefix(f"s3://{BUCKET}/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert keys == [f"{prefix}/thumbnails/ab/x.jpg"]


def test_s3_big_file_goes_multipart(s3_root: str, s3: Any, tmp_path: Path) -> None:  # noqa: ANN401
    big = tmp_path / "model.onnx"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # over boto3's 8 MiB multipart threshold
    store = S3Storage(s3_root)
    store.write_file("models/1/model.onnx", big)
    head = s3.head_object(Bucket=BUCKET, Key=store.object_key("models/1/model.onnx"))
    assert head["ContentLength"] == big.stat().st_size
    assert head["ETag"].strip('"').endswith("-2"), "a multipart upload's ETag ends in -<parts>"
    assert store.download("models/1/model.onnx", tmp_path / "back.onnx").read_bytes() == big.read_bytes()


def test_s3_takes_an_existing_client(s3_root: str, s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the Dagster resource does: it owns the client (S3Resource(...).get_client()).
    monkeypatch.setenv("DSGEN_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # ignored when a client is given
    store = S3Storage(s3_root, client=s3_server.client())
    store.write_bytes("k", b"v")
    assert store.read_bytes("k") == b"v"


def test_local_write_file_hard_links_when_it_can(tmp_path: Path) -> None:
    src = tmp_path / "out.json"
    src.write_text("{}")
    store = LocalStorage(tmp_path / "store")
    store.write_file("exports/out.json", src)
    assert store.path("exports/out.json").stat().st_ino == src.stat().st_ino
    assert store.list() == ["exports/out.json"], "no temporary files left behind"


def test_open_storage_dispatches(tmp_path: Path, s3_root: str) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage(s3_root), S3Storage)


# -- user mistakes are one-line DsgenErrors, not tracebacks


def test_missing_bucket(s3_env: dict[str, str], tmp_path: Path) -> None:
    store = S3Storage("s3://no-such-bucket/p")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for call in (lambda: store.write_bytes("k", b"x"), lambda: store.read_bytes("k"), lambda: store.exists("k"),
                 lambda: store.list(), lambda: store.write_file("k", src), lambda: store.download("k", tmp_path / "d")):
        with pytest.raises(DsgenError, match="S3 bucket 'no-such-bucket' does not exist"):
            call()


def test_bad_credentials(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    server = MotoServer(auth=True).start()  # moto checks access keys only when asked to
    try:
        monkeypatch.setenv("DSGEN_S3_ENDPOINT_URL", server.url)
        store = S3Storage(f"s3://{BUCKET}/p")
        for call in (lambda: store.write_bytes("k", b"x"), lambda: store.exists("k"), lambda: store.list()):
            with pytest.raises(DsgenError, match=r"refused access to bucket 'dsgen-test' \((InvalidAccessKeyId|HTTP 403)\)"):
                call()
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


def test_no_credentials(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup (and its timeouts)
    with pytest.raises(DsgenError, match="no AWS credentials"):
        S3Storage(f"s3://{BUCKET}/p").read_bytes("k")


def test_unreachable_endpoint(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from support import _free_port

    monkeypatch.setenv("DSGEN_S3_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    with pytest.raises(DsgenError, match=r"cannot reach the S3 endpoint http://127\.0\.0\.1:\d+ .*DSGEN_S3_ENDPOINT_URL"):
        S3Storage(f"s3://{BUCKET}/p").write_bytes("k", b"x")


def test_mask_writes_are_all_or_none(store: Storage) -> None:
    class Flaky:
        """The storage, but the write of object 13 fails (as a dropped connection would)."""

        def __init__(self, inner: Storage) -> None:
            self.inner = inner

        def write_bytes(self, key: str, data: bytes) -> str:
            if key.endswith("/13.rle"):
                raise OSError("connection reset")
            return self.inner.write_bytes(key, data)

        def __getattr__(self, name: str) -> Any:  # noqa: ANN401
            return getattr(self.inner, name)

    rle = {"size": [2, 2], "counts": "04"}
    with pytest.raises(OSError, match="connection reset"):
        MaskStore(Flaky(store)).put_many([(i, rle) for i in range(40)])  # type: ignore[arg-type]
    assert store.list("masks") == []
    uris = MaskStore(store).put_many([(i, rle) for i in range(40)])
    assert len(store.list("masks")) == 40 and MaskStore(store).get(uris[13]) == rle

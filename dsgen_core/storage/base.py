"""Storage backends addressed by keys such as ``masks/ab/cd/12.rle``.

A missing key reads as FileNotFoundError on every backend; configuration mistakes are DsgenErrors.
``list`` and ``delete_tree`` take a folder: ``a/b`` covers ``a/b/...``, never ``a/bc``.
"""

from __future__ import annotations

import builtins
import os
import shutil
import uuid
from pathlib import Path
from typing import NamedTuple, Protocol

from dsgen_core.errors import DsgenError


class StoredFile(NamedTuple):
    key: str
    size: int
    modified: float  # seconds since the epoch


class Storage(Protocol):
    root_uri: str

    def write_bytes(self, key: str, data: bytes) -> str: ...
    def read_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def uri(self, key: str) -> str: ...
    def key_of(self, uri: str) -> str: ...
    def write_file(self, key: str, local_path: str | os.PathLike[str]) -> str: ...
    def download(self, key: str, dest: str | os.PathLike[str]) -> Path: ...
    def list(self, prefix: str = "") -> builtins.list[str]: ...
    def list_files(self, prefix: str = "") -> builtins.list[StoredFile]: ...
    def delete_tree(self, prefix: str) -> None: ...


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root_uri = str(self.root)

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key {key!r} escapes the storage root")
        return p

    def write_bytes(self, key: str, data: bytes) -> str:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, p)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full or read-only disk leaves no half-written file behind
            raise
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def write_file(self, key: str, local_path: str | os.PathLike[str]) -> str:
        """Store a finished file; a hard link when on the same filesystem, so a big export costs no copy.

        The caller hands the file over: writing into ``local_path`` afterwards would change the stored copy.
        """
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f"{p.name}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                os.link(local_path, tmp)
            except OSError:  # another filesystem, or one without hard links
                shutil.copyfile(local_path, tmp)
            os.replace(tmp, p)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return self.uri(key)

    def download(self, key: str, dest: str | os.PathLike[str]) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(key), dest)  # a copy, not a link: the caller may edit what it fetched
        return dest

    def list(self, prefix: str = "") -> builtins.list[str]:
        folder = self.path(prefix)
        root = self.root.resolve()
        return sorted(p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file())

    def list_files(self, prefix: str = "") -> builtins.list[StoredFile]:
        """``list``, with each file's size and modification time."""
        root = self.root.resolve()
        out = []
        for p in self.path(prefix).rglob("*"):
            try:
                st = p.stat()
            except FileNotFoundError:  # removed while listing
                continue
            if not p.is_dir():
                out.append(StoredFile(p.relative_to(root).as_posix(), st.st_size, st.st_mtime))
        return sorted(out)

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def uri(self, key: str) -> str:
        return key

    def key_of(self, uri: str) -> str:
        if uri.startswith("s3://"):
            raise DsgenError(f"{uri} is in S3 but the configured storage is the local folder {self.root_uri}: "
                             "set DSGEN_STORAGE to the s3:// root it was written to")
        return uri


def open_storage(root: str) -> Storage:
    if root.startswith("s3://"):
        from dsgen_core.storage.s3 import S3Storage

        return S3Storage(root)
    return LocalStorage(root)

"""One storage interface for every file the platform writes: a local root, or ``s3://bucket/prefix``."""

from dsgen_core.storage.base import LocalStorage, Storage, StoredFile, open_storage

__all__ = ["LocalStorage", "Storage", "StoredFile", "open_storage"]

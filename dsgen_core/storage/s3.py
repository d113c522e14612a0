"""S3 (or any S3-compatible server: MinIO, Ceph, moto) behind the :class:`Storage` interface.

``S3Storage("s3://bucket/prefix")`` stores key ``masks/ab/cd/1.rle`` as object
``prefix/masks/ab/cd/1.rle`` and names it ``s3://bucket/prefix/masks/ab/cd/1.rle``.
The endpoint comes from ``DSGEN_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL``, else AWS itself);
credentials and region come from the usual AWS chain (env vars, profile, instance role).
Pipelines pass their own client (dagster-aws ``S3Resource(...).get_client()``) instead.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from dsgen_core.errors import DsgenError
from dsgen_core.storage.base import StoredFile

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "AccessDenied", "ExpiredToken",
    "InvalidToken", "403", "AllAccessDisabled",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


def endpoint_url() -> str | None:
    return os.environ.get("DSGEN_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client(endpoint: str | None = None) -> BaseClient:
    endpoint = endpoint or endpoint_url()
    config = Config(
        # botocore's defaults (legacy retries x5, 60 s connect timeout) make a wrong endpoint hang for minutes.
        connect_timeout=10,
        retries={"mode": os.environ.get("AWS_RETRY_MODE") or "standard"},
        # Self-hosted servers rarely have wildcard DNS for virtual-hosted bucket names.
        s3={"addressing_style": "path"} if endpoint else None,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # A fresh Session: the default one is shared module state and not thread-safe to create clients from.
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``."""
    if not uri.startswith("s3://"):
        raise DsgenError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise DsgenError(f"S3 URI {uri!r} names no bucket (expected s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def _client_error(exc: BaseException) -> ClientError | None:
    # upload_file wraps the ClientError in S3UploadFailedError without `from`, so it is the context.
    if isinstance(exc, ClientError):
        return exc
    inner = exc.__cause__ or exc.__context__
    return inner if isinstance(inner, ClientError) else None


class S3Storage:
    def __init__(self, root: str, client: BaseClient | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(root)
        self.root_uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.client = client if client is not None else make_client()
        self._bucket_checked = False

    # -- naming

    def object_key(self, key: str) -> str:
        key = key.strip("/")
        if key and any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"storage key {key!r} escapes the storage root or is not normalized")
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def key_of(self, uri: str) -> str:
        if not uri.startswith("s3://"):
            return uri  # LocalStorage URIs are bare keys relative to the root, so they move with the files
        base = self.root_uri + "/"
        if not uri.startswith(base):
            raise DsgenError(f"{uri} lies outside the configured storage {self.root_uri} (DSGEN_STORAGE)")
        return uri[len(base):]

    # -- errors

    @contextmanager
    def _errors(self, key: str = "") -> Iterator[None]:
        """Turns the user's configuration mistakes into one-line DsgenErrors; a missing key into FileNotFoundError."""
        try:
            yield
        except (ClientError, S3UploadFailedError) as exc:
            err = _client_error(exc)
            if err is None:
                raise DsgenError(f"S3 upload to {self.uri(key)} failed: {exc}") from None
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_KEY_CODES:
                self._check_bucket()  # HEAD on a missing bucket says 404 as well
                raise FileNotFoundError(f"{self.uri(key)} does not exist") from None
            self._raise_for(code, err)
        except (NoCredentialsError, PartialCredentialsError):
            raise DsgenError(
                "no AWS credentials for S3 storage: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise DsgenError(
                f"cannot reach the S3 endpoint {self.client.meta.endpoint_url} ({type(exc).__name__}); "
                "check DSGEN_S3_ENDPOINT_URL"
            ) from None

    def _raise_for(self, code: str, err: ClientError) -> NoReturn:
        endpoint = self.client.meta.endpoint_url
        if code == "NoSuchBucket":
            raise DsgenError(f"S3 bucket {self.bucket!r} does not exist at {endpoint} (DSGEN_STORAGE={self.root_uri})") from None
        if code in _CREDENTIAL_CODES:
            reason = f"HTTP {code}" if code.isdigit() else code  # HEAD answers carry no error body
            raise DsgenError(
                f"S3 at {endpoint} refused access to bucket {self.bucket!r} ({reason}): check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY and the bucket policy"
            ) from None
        message = err.response.get("Error", {}).get("Message", "")
        raise DsgenError(f"S3 request to {endpoint} for bucket {self.bucket!r} failed: {code} {message}".rstrip()) from None

    def _check_bucket(self) -> None:
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            self._raise_for("NoSuchBucket" if code in _MISSING_KEY_CODES else code, exc)
        self._bucket_checked = True

    # -- the Storage interface

    def write_bytes(self, key: str, data: bytes) -> str:
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        with self._errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            with self._errors(key):
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def write_file(self, key: str, local_path: str | os.PathLike[str]) -> str:
        """Upload a local file; boto3 switches to a parallel multipart upload above 8 MiB."""
        with self._errors(key):
            self.client.upload_file(str(local_path), self.bucket, self.object_key(key))
        return self.uri(key)

    def download(self, key: str, dest: str | os.PathLike[str]) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._errors(key):
            self.client.download_file(self.bucket, self.object_key(key), str(dest))
        return dest

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys under the folder ``prefix`` (``""``: everything), sorted."""
        return [f.key for f in self.list_files(prefix)]

    def list_files(self, prefix: str = "") -> builtins.list[StoredFile]:
        """``list``, with each object's size and LastModified."""
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(StoredFile(obj["Key"][strip:], int(obj["Size"]), obj["LastModified"].timestamp())
                      for obj in self._listing(prefix))

    def delete_tree(self, prefix: str) -> None:
        objects = self._objects(prefix)
        for i in range(0, len(objects), 1000):  # DeleteObjects takes at most 1000 keys
            with self._errors(prefix):
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in objects[i:i + 1000]], "Quiet": True}
                )
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise DsgenError(f"S3 refused to delete {len(resp['Errors'])} objects under {self.uri(prefix)}, "
                                 f"first {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}")

    def _objects(self, prefix: str) -> builtins.list[str]:
        return [obj["Key"] for obj in self._listing(prefix)]

    def _listing(self, prefix: str) -> builtins.list[dict[str, Any]]:
        """The objects under the folder ``prefix``; the trailing slash keeps ``a/b`` from matching ``a/bc``."""
        folder = self.object_key(prefix)
        out: builtins.list[dict[str, Any]] = []
        with self._errors(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{folder}/" if folder else "")
            for page in pages:
                out.extend(page.get("Contents", []))
        return out

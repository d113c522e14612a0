"""Test helpers that are not fixtures: a throwaway PostgreSQL server and the CLI runner.

Importable from any test module as ``from support import ...`` (``tests/`` is on ``sys.path``
because ``tests/conftest.py`` lives in a directory without ``__init__.py``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- PostgreSQL


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the user to run them as) are missing."""


def find_pg_bin(name: str) -> str | None:
    """``initdb``/``pg_ctl`` from PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else -1)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A private PostgreSQL cluster in a temp dir, on 127.0.0.1 and a free port, trust auth.

    PostgreSQL refuses to run as root, so under uid 0 every server command runs as the
    ``postgres`` system user (``runuser``) and the temp dir is handed to that user.
    """

    user = "postgres"  # the cluster's superuser role

    def __init__(self) -> None:
        self.initdb = find_pg_bin("initdb")
        self.pg_ctl = find_pg_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
                "/usr/lib/postgresql/*/bin. Install them (`bash scripts/setup.sh` does it, or "
                "`apt-get install -y postgresql`): the registry tests run on SQLite AND PostgreSQL."
            )
        self.as_root = os.geteuid() == 0
        self.run_as: pwd.struct_passwd | None = None
        if self.as_root:
            try:
                self.run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, and PostgreSQL refuses to run as root, but there is no "
                    "`postgres` system user to run it as (the Debian postgresql package creates it)"
                ) from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable("running as root but `runuser` (util-linux) is missing")
        self.dir = Path(tempfile.mkdtemp(prefix="dsgen-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port: int | None = None
        self.started = False
        if self.run_as is not None:
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)

    # -- process control

    def _cmd(self, *argv: str) -> subprocess.CompletedProcess[str]:
        full = list(argv)
        if self.run_as is not None:
            full = ["runuser", "-u", self.run_as.pw_name, "--", *full]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        return subprocess.run(
            full, capture_output=True, text=True, env=env, cwd=self.dir, stdin=subprocess.DEVNULL, timeout=120
        )

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{what} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n--- server log ---\n{log}"
            )

    def start(self) -> PostgresServer:
        self._check(
            self._cmd(
                self.initdb, "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                "--locale=C", "--no-sync",
            ),
            "initdb",
        )
        # A port picked free can be taken by another xdist worker before we bind it: retry.
        last: subprocess.CompletedProcess[str] | None = None
        for _ in range(5):
            port = _free_port()
            opts = (
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            last = self._cmd(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
            if last.returncode == 0:
                self.port = port
                self.started = True
                return self
            time.sleep(0.2)
        assert last is not None
        self._check(last, "pg_ctl start")
        return self

    def stop(self) -> None:
        try:
            if self.started:
                self._cmd(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- databases

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True) as c:
            c.execute(sql)

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"test_{uuid.uuid4().hex}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- CLI


def dsgen_executable() -> str:
    """The ``dsgen`` console script of the interpreter running the tests."""
    exe = Path(sys.executable).parent / "dsgen"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} is missing: install the package (`pip install -e '.[dev]'`)")
    return str(exe)


def run_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    check: bool = False,
    input: str | None = None,  # noqa: A002 - mirrors subprocess.run
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``dsgen *args`` in a subprocess with ``env``; ``check`` asserts exit 0 and shows output."""
    proc = subprocess.run(
        [dsgen_executable(), *map(str, args)],
        env=dict(env),
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dsgen {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def tree_digest(root: Path) -> str:
    """One sha256 over every file's relative path and bytes: equal digests, identical trees."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


BUCKET = "dsgen-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 and a free port; ``auth=True`` checks access keys."""

    def __init__(self, *, auth: bool = False) -> None:
        self.auth = auth
        self.log = Path(tempfile.mkstemp(prefix="dsgen-moto-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> MotoServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        # A port picked free can be taken by another xdist worker before moto binds it: retry.
        for _ in range(5):
            port = _free_port()
            with self.log.open("wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )
            if self._wait_ready(f"http://127.0.0.1:{port}"):
                self.url = f"http://127.0.0.1:{port}"
                return self
            self.stop()
        raise RuntimeError(f"moto server did not start:\n{self.log.read_text(errors='replace')[-4000:]}")

    def _wait_ready(self, url: str, timeout: float = 30) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self, **credentials: str) -> Any:  # noqa: ANN401 - a boto3 S3 client
        import boto3  # noqa: PLC0415 - only the S3 tests need it

        creds = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.session.Session().client("s3", endpoint_url=self.url, region_name="us-east-1", **creds)


# --------------------------------------------------------------------------- imports


def import_file(registry: Any, annotations: Any, *, project: str = "p", images: Any = None, actor: str = "test",
                report_path: Any = None, **kw: Any) -> Any:
    """``import_coco`` in one transaction of ``registry`` into ``project`` (made if missing), the way the
    CLI calls it; ``report_path`` writes the validation report there."""
    from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.storage import open_storage

    storage = open_storage(registry.settings.storage_root)
    with registry.session(bulk=True) as s:
        result = import_coco(s, ensure_project(s, project), annotations, images=images, storage=storage,
                             sources_dir=local_sources_dir(storage, registry.settings.home), actor=actor, **kw)
    if report_path is not None:
        result.report_path = result.report.write(Path(report_path))
    return result


def tiny_onnx_encoder(path: Path, dim: int, seed: int) -> Path:
    """A seeded random conv net exported to ONNX: a real image encoder (32x32 px in, ``dim`` out) in a second."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, dim),
    ).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(path), input_names=["images"], output_names=["embeddings"],
                      dynamic_axes={"images": {0: "n"}, "embeddings": {0: "n"}}, dynamo=False)
    return path

"""`dsgen users|keys|members` and `dsgen serve` as a user runs them (issue 13)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from support import REPO_ROOT


def _ok(r: Any) -> Any:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_users_keys_and_members_from_the_cli(cli: Any) -> None:
    assert cli.invoke("init", "--project", "alpha").exit_code == 0
    short = cli.invoke("users", "add", "ana@example.com", "--admin", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    ana = _ok(cli.invoke("users", "add", "Ana@Example.com", "--admin", "--password-stdin", "--json",
                         input="a long enough password\n"))
    assert ana["email"] == "ana@example.com" and ana["admin"] is True
    again = cli.invoke("users", "add", "ana@example.com", "--password-stdin", input="a long enough password\n")
    assert again.exit_code == 2 and "exists already" in again.output
    _ok(cli.invoke("users", "add", "bo@example.com", "--password-stdin", "--json", input="another long password\n"))
    _ok(cli.invoke("members", "grant", "bo@example.com", "editor", "--project", "alpha", "--json"))
    assert _ok(cli.invoke("members", "list", "--project", "alpha", "--json")) == [
        {"email": "bo@example.com", "role": "editor"}]
    key = _ok(cli.invoke("keys", "create", "ci", "--user", "bo@example.com", "--scope", "read", "--scope", "write",
                         "--expires-days", "30", "--json"))
    assert key["key"].startswith(f"dsg_{key['id']}_") and key["scopes"] == ["read", "write"] and key["expires_at"]
    listed = _ok(cli.invoke("keys", "list", "--json"))
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    _ok(cli.invoke("keys", "revoke", str(key["id"]), "--json"))
    assert _ok(cli.invoke("keys", "list", "--json"))[0]["revoked"] is True
    nobody = cli.invoke("keys", "create", "x", "--user", "ghost@example.com")
    assert nobody.exit_code == 2 and "no user" in nobody.output


def test_dsgen_serve_answers_health_and_docs(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "dsgen_core.cli.main", "serve", "--port", str(port)],
                            env={**env, **os.environ, "DSGEN_HOME": env["DSGEN_HOME"],
                                 "DSGEN_DATABASE_URL": env["DSGEN_DATABASE_URL"]},
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    health = json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "dsgen serve did not answer within 60 s"
                time.sleep(0.3)
        assert health["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as r:
            doc = json.loads(r.read())
        assert "/api/projects/{project}/assets" in doc["paths"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/docs", timeout=5) as r:
            assert b"swagger" in r.read().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=20)

"""A stand-in CVAT server for tests: the subset of CVAT's REST API dsgen uses, checked against CVAT's schema.

No CVAT server can be installed from the package registries, so the real ``cvat-sdk`` talks to
this one. Every request (path, method, query parameters, JSON body, the form fields of uploads)
and every JSON response is validated against CVAT's own OpenAPI documents, the 2.17 one in the
corpus and the 2.72 one, with ``openapi-schema-validator``; a mismatch answers 500 and is kept in
:attr:`StandIn.violations`, which every test using the server asserts empty. So the stand-in
cannot drift from the real API: a field it invents, or one the SDK sends that CVAT does not
take, fails the test.

    with StandIn.start(corpus) as cvat:
        os.environ["CVAT_URL"] = cvat.url
        ...
        assert cvat.violations == []
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import itertools
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

TOKEN = "stand-in-token"
# Answers CVAT gives that its schema does not list, each with why it is allowed here.
UNDOCUMENTED = {
    ("POST", "/api/tasks/{id}/data/", 200): "Upload-Multiple (bulk file upload): CVAT answers 200 with no body and "
                                            "cvat-sdk expects exactly that; the schema lists only 202",
    ("PUT", "/api/tasks/{id}/annotations/", 200): "2.17's schema lists only the answers of the old file import "
                                                  "(201/202); for a JSON body CVAT answers 200, as 2.72's lists",
}
# Requests CVAT serves outside its OpenAPI document: TUS's upload endpoints (the file's offset and
# its chunks), which cvat-sdk's uploader uses for annotation files.
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm")
TUS_FILE = re.compile(r"^/api/tasks/\d+/annotations/[0-9a-f-]{36}$")
USER, PASSWORD = "annotator", "s3cret-Pa55"


@cache
def _specs(root: Path) -> list[tuple[str, dict[str, Any]]]:
    old = yaml.safe_load((root / "cvat" / "cvat" / "schema.yml").read_text())
    new = json.loads((root / "cvat_openapi_tryAGI" / "openapi.yaml").read_text())
    return [("2.17", old), ("2.72", new)]


class _Spec:
    """One OpenAPI document: finds an operation for a request and validates bodies against it."""

    def __init__(self, tag: str, doc: dict[str, Any]) -> None:
        self.tag, self.doc = tag, doc
        self.uri = f"urn:cvat-{tag}"
        self.registry = Registry().with_resource(self.uri, Resource.from_contents(doc, default_specification=DRAFT4))
        self.routes = [(re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p) for p in doc["paths"]]

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for rx, p in self.routes:
            if rx.match(path):
                return self.doc["paths"][p].get(method.lower())
        return None

    def validate(self, schema: dict[str, Any], value: Any, *, write: bool) -> str | None:
        cls = OAS30WriteValidator if write else OAS30ReadValidator
        v = cls(schema, registry=self.registry, _resolver=self.registry.resolver(base_uri=self.uri))
        err = next(iter(sorted(v.iter_errors(value), key=lambda e: list(e.path))), None)
        return None if err is None else f"{list(err.absolute_path)}: {err.message[:300]}"

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema


class StandIn:
    def __init__(self, corpus: Path) -> None:
        self.specs = [_Spec(t, d) for t, d in _specs(corpus)]
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.tasks: dict[int, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.fail_next: dict[str, tuple[int, Any]] = {}
        self.share_root: Path | None = None  # a folder standing for CVAT's shared storage
        self.cloud_storages: dict[int, Path] = {}  # cloud storage id -> a folder standing for its bucket
        self.server: ThreadingHTTPServer | None = None
        self.url = ""
        self.rqs: dict[str, dict[str, Any]] = {}  # background requests (rq ids) -> their operation
        self.uploads: dict[str, bytearray] = {}  # TUS file id -> bytes so far
        self.reply_headers: dict[str, str] = {}  # extra headers of the answer being made
        self.imported: list[tuple[int, str, bytes]] = []  # (task, format, file) of each annotation import

    # -- lifecycle

    @classmethod
    @contextmanager
    def start(cls, corpus: Path) -> Iterator[StandIn]:
        me = cls(corpus)
        handler = type("Handler", (_Handler,), {"cvat": me})
        me.server = _Server(("127.0.0.1", 0), handler)
        me.url = f"http://127.0.0.1:{me.server.server_address[1]}"
        thread = threading.Thread(target=me.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield me
        finally:
            me.server.shutdown()
            me.server.server_close()

    # -- checks

    def check_request(self, method: str, path: str, query: dict[str, list[str]], body: Any, form: dict[str, Any] | None,
                      ) -> str | None:
        for spec in self.specs:
            op = spec.operation(method, path)
            if op is None:
                return f"{spec.tag}: no operation {method} {path}"
            names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
            unknown = set(query) - names
            if unknown:
                return f"{spec.tag}: {method} {path}: query parameters {sorted(unknown)} are not in the API"
            content = (op.get("requestBody") or {}).get("content") or {}
            if body is not None:
                schema = (content.get("application/json") or {}).get("schema")
                if schema is None:
                    return f"{spec.tag}: {method} {path} takes no JSON body"
                err = spec.validate(schema, body, write=True)
                if err:
                    return f"{spec.tag}: {method} {path} request: {err}"
            if form:
                schema = (content.get("multipart/form-data") or {}).get("schema")
                if schema is None:
                    return f"{spec.tag}: {method} {path} takes no form"
                props = spec.resolve(schema).get("properties", {})
                bad = [k for k in form if k.split("[")[0] not in props]
                if bad:
                    return f"{spec.tag}: {method} {path}: form fields {bad} are not in the API"
        return None

    def check_response(self, method: str, path: str, status: int, body: Any) -> str | None:
        for spec in self.specs:
            op = spec.operation(method, path)
            assert op is not None
            resp = op["responses"].get(str(status))
            if resp is None and (method, re.sub(r"/\d+", "/{id}", path), status) in UNDOCUMENTED:
                continue
            if resp is None:
                return f"{spec.tag}: {method} {path} never answers {status}"
            schema = ((resp.get("content") or {}).get("application/vnd.cvat+json") or
                      (resp.get("content") or {}).get("application/json") or {}).get("schema")
            if schema is not None and body is not None:
                err = spec.validate(schema, body, write=False)
                if err:
                    return f"{spec.tag}: {method} {path} {status} response: {err}"
        return None

    # -- the API

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, form: dict[str, Any],
               files: dict[str, tuple[str, bytes]], headers: Any) -> tuple[int, Any]:
        key = method + " " + re.sub(r"/\d+", "/{id}", path)
        if key in self.fail_next:
            return self.fail_next.pop(key)
        if path == "/api/server/about":
            return 200, {"name": "Computer Vision Annotation Tool", "description": "stand-in", "version": "2.23.1",
                         "logo_url": "", "subtitle": ""}
        if path == "/api/auth/login" and method == "POST":
            ok = body and body.get("username") == USER and body.get("password") == PASSWORD
            return (200, {"key": TOKEN}) if ok else (400, {"non_field_errors": ["Unable to log in."]})
        auth = headers.get("Authorization", "")
        if auth not in (f"Token {TOKEN}", f"Bearer {TOKEN}"):
            return 401, {"detail": "Authentication credentials were not provided."}
        if path == "/api/users/self":
            return 200, {"url": f"{self.url}/api/users/1", "id": 1, "username": USER, "first_name": "",
                         "last_name": "", "email": "annotator@example.com", "groups": ["user"], "is_staff": False,
                         "is_superuser": False, "is_active": True, "last_login": _now(), "date_joined": _now(),
                         "has_analytics_access": False}
        m = re.fullmatch(r"/api/requests/(.+)", path)
        if m:
            rq = unquote(m[1])
            tid = int(re.findall(r"\d+", rq)[-1])
            now = _now()
            op = self.rqs.get(rq) or {"type": "create:task", "format": None}
            return 200, {"id": rq, "status": "finished", "message": "", "operation": {
                "type": op["type"], "target": "task", "task_id": tid, "project_id": None, "job_id": None,
                "format": op["format"], "function_id": None}, "progress": 1.0, "created_date": now,
                "started_date": now, "finished_date": now, "expiry_date": None, "owner": {"id": 1, "username": USER},
                "result_url": None, "result_id": tid}
        if path == "/api/tasks" and method == "POST":
            return 201, self._create_task(body)
        if path == "/api/tasks" and method == "GET":
            rows = [self._task_read(t) for t in self.tasks.values()
                    if "name" not in query or t["name"] == query["name"][0]]
            return 200, _page(rows)
        m = re.fullmatch(r"/api/tasks/(\d+)(/.*)?", path)
        if m:
            task = self.tasks.get(int(m[1]))
            if task is None:
                return 404, {"detail": "Not found."}
            return self._task_api(task, method, m[2] or "", query, body, form, files, headers)
        m = re.fullmatch(r"/api/cloudstorages/(\d+)", path)
        if m and method == "GET":
            if int(m[1]) not in self.cloud_storages:
                return 404, {"detail": "Not found."}
            return 200, {"id": int(m[1]), "owner": {"url": f"{self.url}/api/users/1", "id": 1, "username": USER,
                                                     "first_name": "", "last_name": ""},
                         "manifests": [], "created_date": _now(), "updated_date": _now(), "provider_type": "AWS_S3_BUCKET",
                         "resource": "images", "display_name": "images", "credentials_type": "KEY_SECRET_KEY_PAIR",
                         "specific_attributes": "", "description": ""}
        if path == "/api/labels" and method == "GET":
            task = self.tasks[int(query["task_id"][0])]
            return 200, _page(task["labels"])
        m = re.fullmatch(r"/api/jobs/(\d+)(/annotations/)?", path)
        if m and method == "GET":
            found = [(t, j) for t in self.tasks.values() for j in t["jobs"] if j["id"] == int(m[1])]
            if not found:
                return 404, {"detail": "Not found."}
            (t, j), = found
            if not m[2]:
                return 200, self._job_read(t, j)
            def inside(o: dict[str, Any]) -> bool:
                return j["start"] <= o["frame"] <= j["stop"]
            return 200, {"version": t.get("version", 0), "tags": [o for o in t["tags"] if inside(o)],
                         "shapes": [o for o in t["shapes"] if inside(o)],
                         "tracks": [tr for tr in t["tracks"] if any(inside(sh) for sh in tr.get("shapes") or [])]}
        if path == "/api/jobs" and method == "GET":
            task = self.tasks[int(query["task_id"][0])]
            return 200, _page([self._job_read(task, j) for j in task["jobs"]])
        return 404, {"detail": "Not found."}

    def _create_task(self, body: dict[str, Any]) -> dict[str, Any]:
        tid = next(self.ids)
        labels = []
        for lb in body.get("labels") or []:
            attrs = [{**a, "id": next(self.ids), "default_value": a.get("default_value", "")}
                     for a in lb.get("attributes") or []]
            subs = [{"id": next(self.ids), "name": sub["name"], "color": "#aa0000", "type": sub.get("type", "points"),
                     "attributes": [], "has_parent": True} for sub in lb.get("sublabels") or []]
            labels.append({"id": next(self.ids), "name": lb["name"], "color": "#33ddff", "type": lb.get("type", "any"),
                           "svg": lb.get("svg", ""), "sublabels": subs, "attributes": attrs, "project_id": None,
                           "task_id": tid, "parent_id": None, "has_parent": False})
        self.tasks[tid] = {"id": tid, "name": body["name"], "labels": labels, "segment_size": body.get("segment_size") or 0,
                           "frames": [], "files": {}, "jobs": [], "shapes": [], "tags": [], "tracks": [],
                           "created": _now(), "status": "annotation", "project_id": body.get("project_id")}
        return self._task_read(self.tasks[tid])

    def _task_read(self, t: dict[str, Any]) -> dict[str, Any]:
        base = self.url
        return _filled({"url": f"{base}/api/tasks/{t['id']}", "id": t["id"], "name": t["name"], "project_id": t["project_id"],
                "mode": "annotation" if t["frames"] else "", "owner": {"url": f"{base}/api/users/1", "id": 1,
                                                                       "username": USER, "first_name": "", "last_name": ""},
                "assignee": None, "bug_tracker": "", "created_date": t["created"], "updated_date": t["created"],
                "overlap": 0, "segment_size": t["segment_size"] or len(t["frames"]), "status": t["status"],
                "data_chunk_size": 36 if t["frames"] else None, "data_compressed_chunk_type": "imageset" if t["frames"] else None,
                "data_original_chunk_type": "imageset" if t["frames"] else None, "guide_id": None,
                "size": len(t["frames"]), "image_quality": 95 if t["frames"] else None, "data": t["id"] if t["frames"] else None,
                "dimension": "2d", "subset": "", "organization": None, "target_storage": None, "source_storage": None,
                "jobs": {"count": len(t["jobs"]), "completed": 0, "validation": 0,
                         "url": f"{base}/api/jobs?task_id={t['id']}"},
                "labels": {"url": f"{base}/api/labels?task_id={t['id']}"}, "assignee_updated_date": None,
                "validation_mode": None, "consensus_enabled": False})

    def _job_read(self, t: dict[str, Any], j: dict[str, Any]) -> dict[str, Any]:
        return _filled({"url": f"{self.url}/api/jobs/{j['id']}", "id": j["id"], "task_id": t["id"], "project_id": None,
                "assignee": None, "guide_id": None, "dimension": "2d", "bug_tracker": None, "status": "annotation",
                "stage": "annotation", "state": j["state"], "mode": "annotation", "frame_count": j["stop"] - j["start"] + 1,
                "start_frame": j["start"], "stop_frame": j["stop"], "data_chunk_size": 36,
                "data_compressed_chunk_type": "imageset", "data_original_chunk_type": "imageset",
                "created_date": t["created"], "updated_date": j.get("updated", t["created"]),
                "issues": {"url": f"{self.url}/api/issues?job_id={j['id']}", "count": 0},
                "labels": {"url": f"{self.url}/api/labels?job_id={j['id']}"}, "type": j.get("type", "annotation"),
                "organization": None, "target_storage": None, "source_storage": None, "assignee_updated_date": None,
                "parent_job_id": None, "consensus_replicas": 0})

    def _task_api(self, t: dict[str, Any], method: str, rest: str, query: dict[str, list[str]], body: Any,
                  form: dict[str, Any], files: dict[str, tuple[str, bytes]], headers: Any) -> tuple[int, Any]:
        if rest == "" and method == "GET":
            return 200, self._task_read(t)
        if rest == "" and method == "DELETE":
            del self.tasks[t["id"]]
            return 204, None
        if rest == "/data/" and method == "POST":
            if "Upload-Start" in headers:
                return 202, None
            if "Upload-Multiple" in headers:
                for name, data in files.values():
                    t["files"][os.path.basename(name)] = data
                return 200, None
            if body and body.get("server_files"):  # CVAT's shared or cloud storage: it reads the files itself
                root = self.share_root
                if body.get("cloud_storage_id") is not None:
                    root = self.cloud_storages.get(body["cloud_storage_id"])
                    if root is None:
                        return 400, {"cloud_storage_id": ["no such cloud storage"]}
                    if not body.get("use_cache"):
                        return 400, {"use_cache": ["data from a cloud storage needs use_cache"]}
                if root is None:
                    return 400, {"server_files": ["no shared storage on this server"]}
                for name in body["server_files"]:
                    f = root / name
                    if not f.is_file():
                        return 400, {"server_files": [f"{name} is not in the share"]}
                    t["files"][name] = f.read_bytes()
                return self._finish(t, body)
            if "Upload-Finish" in headers:
                return self._finish(t, body or form)  # cvat-sdk sends the DataRequest fields as JSON
        if rest == "/data/meta" and method == "GET":
            v = t.get("video")
            frames = [{"name": v["name"], "width": v["width"], "height": v["height"]}] if v else t["frames"]
            return 200, {"chunks_updated_date": t["created"], "chunk_size": 36, "size": len(t["frames"]),
                         "image_quality": 95, "start_frame": v["start"] if v else 0,
                         "stop_frame": v["stop"] if v else max(0, len(t["frames"]) - 1),
                         "frame_filter": v["filter"] if v else "",
                         "frames": [{**f, "related_files": 0, "has_related_context": False} for f in frames],
                         "deleted_frames": [], "included_frames": None}
        if rest == "/annotations/" and method == "POST":
            return self._import(t, query, headers)
        if rest == "/annotations/":
            return self._annotations(t, method, query, body)
        m = re.fullmatch(r"/annotations/([0-9a-f-]{36})", rest)
        if m and m[1] in self.uploads:  # TUS: the offset so far, and the next chunk
            got = self.uploads[m[1]]
            if method == "PATCH":
                if int(headers.get("Upload-Offset", -1)) != len(got):
                    return 409, None
                got.extend(headers.raw_body)
            self.reply_headers = {"Upload-Offset": str(len(got)), "Tus-Resumable": "1.0.0"}
            return (204 if method == "PATCH" else 200), None
        return 404, {"detail": "Not found."}

    def _finish(self, t: dict[str, Any], fields: dict[str, Any]) -> tuple[int, Any]:
        """The task's frames from its files, in the order asked for; its jobs by segment size."""
        order = fields.get("upload_file_order") or fields.get("server_files") or sorted(t["files"])
        order = order if isinstance(order, list) else [order]
        if fields.get("sorting_method") != "predefined":
            order = sorted(order)
        videos = [n for n in order if n.lower().endswith(VIDEO_EXTS)]
        if videos:
            return self._finish_video(t, videos, fields)
        for name in order:
            with Image.open(io.BytesIO(t["files"][name])) as im:
                t["frames"].append({"name": name, "width": im.width, "height": im.height})
        return self._jobs(t)

    def _finish_video(self, t: dict[str, Any], videos: list[str], fields: dict[str, Any]) -> tuple[int, Any]:
        """A video task: the video's frames from start_frame to stop_frame every step, each named as CVAT's
        exports name them (``frame_000042``, the video's frame number), which is how its importers match them."""
        import av

        if len(videos) != 1 or len(t["files"]) != 1:
            return 400, {"detail": "a video task takes one video file and nothing else"}
        with av.open(io.BytesIO(t["files"][videos[0]])) as c:
            stream = c.streams.video[0]
            n = sum(1 for _ in c.decode(stream))
            width, height = stream.codec_context.width, stream.codec_context.height
        step = int(str(fields.get("frame_filter") or "step=1").partition("=")[2])
        start = int(fields.get("start_frame") or 0)
        stop = min(int(fields.get("stop_frame", n - 1)), n - 1)
        t["video"] = {"name": videos[0], "start": start, "stop": stop, "filter": fields.get("frame_filter") or "",
                      "width": width, "height": height}
        t["frames"] = [{"name": f"frame_{k:06d}", "width": width, "height": height}
                       for k in range(start, stop + 1, step)]
        return self._jobs(t)

    def _jobs(self, t: dict[str, Any]) -> tuple[int, Any]:
        seg = t["segment_size"] or len(t["frames"])
        t["jobs"] = [{"id": next(self.ids), "start": s, "stop": min(s + seg, len(t["frames"])) - 1,
                      "state": "new"} for s in range(0, len(t["frames"]), seg)]
        return 202, {"rq_id": f"create:task-{t['id']}"}

    def _import(self, t: dict[str, Any], query: dict[str, list[str]], headers: Any) -> tuple[int, Any]:
        """CVAT's annotation file import: Upload-Start, a TUS upload, Upload-Finish, then a background request."""
        if "Upload-Start" in headers:
            return 202, None
        if "Upload-Length" in headers:
            fid = str(uuid.uuid4())
            self.uploads[fid] = bytearray()
            self.reply_headers = {"Location": f"/api/tasks/{t['id']}/annotations/{fid}", "Tus-Resumable": "1.0.0",
                                  "Upload-Filename": _tus_filename(headers.get("Upload-Metadata", ""))}
            return 201, None
        if "Upload-Finish" in headers:
            fmt, name = query["format"][0], query["filename"][0]
            data = next((bytes(v) for v in self.uploads.values() if v), b"")
            self.uploads.clear()
            self.imported.append((t["id"], fmt, data))
            if fmt == "CVAT 1.1" and name.endswith(".xml"):
                found = _from_cvat_xml(t, data)
            elif fmt == "COCO 1.0" and name.endswith(".json"):
                found = _from_coco(t, data)
            else:
                return 400, {"detail": f"Unknown input format '{fmt}' for {name}"}
            touch(t, _frames_of(t) | _frames_of(found))
            t["shapes"], t["tags"], t["tracks"] = [], [], []  # CVAT's file import replaces the task's annotations
            self._add(t, found)
            t["version"] = t.get("version", 0) + 1
            rq = f"import:task-{t['id']}-annotations"
            self.rqs[rq] = {"type": "import:annotations", "format": fmt}
            return 202, {"rq_id": rq}
        return 400, {"detail": "an annotation import needs a file"}

    def _annotations(self, t: dict[str, Any], method: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, {"version": t.get("version", 0), "tags": t["tags"], "shapes": t["shapes"], "tracks": t["tracks"]}
        # CVAT touches (updated_date) each job whose frames a change reaches, the objects as they were and are.
        touched = _frames_of(body or {}) | _frames_of(t, {o["id"] for k in ("shapes", "tags", "tracks")
                                                         for o in (body or {}).get(k) or [] if "id" in o})
        if method == "PUT":
            t["shapes"], t["tags"], t["tracks"] = [], [], []
            self._add(t, body)
        elif method == "PATCH":
            action = query["action"][0]
            if action == "create":
                self._add(t, body)
            else:
                for key in ("shapes", "tags", "tracks"):
                    ids = {o["id"]: o for o in body.get(key) or []}
                    if action == "delete":
                        t[key] = [o for o in t[key] if o["id"] not in ids]
                    else:
                        t[key] = [_stored({**o, **ids[o["id"]]}) if o["id"] in ids else o for o in t[key]]
        t["version"] = t.get("version", 0) + 1
        touch(t, touched | _frames_of(body or {}))
        return 200, {"version": t["version"], "tags": t["tags"], "shapes": t["shapes"], "tracks": t["tracks"]}

    def _add(self, t: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("shapes", "tags", "tracks"):
            for o in body.get(key) or []:
                t[key].append(_stored({**o, "id": next(self.ids)}, self.ids))


def _frames_of(data: dict[str, Any], ids: set[int] | None = None) -> set[int]:
    """The frames of the objects in ``data`` (only those with ``ids``, when given)."""
    out: set[int] = set()
    for key in ("shapes", "tags", "tracks"):
        for o in data.get(key) or []:
            if ids is not None and o.get("id") not in ids:
                continue
            out.update(int(sh["frame"]) for sh in [o, *(o.get("shapes") or [])] if "frame" in sh)
    return out


def touch(t: dict[str, Any], frames: set[int]) -> None:
    """Mark the jobs holding ``frames`` as changed now, as CVAT does when their annotations change."""
    now = _now()
    for j in t["jobs"]:
        if any(j["start"] <= f <= j["stop"] for f in frames):
            j["updated"] = now


def _tus_filename(meta: str) -> str:
    for item in meta.split(","):
        key, _, value = item.strip().partition(" ")
        if key == "filename":
            return base64.b64decode(value).decode()
    return "upload"


def _frame_index(t: dict[str, Any]) -> dict[str, int]:
    """Frame number by name without its extension: how CVAT's importers match a file's images to frames."""
    return {os.path.splitext(f["name"])[0]: i for i, f in enumerate(t["frames"])}


def _label_maps(t: dict[str, Any]) -> tuple[dict[str, Any], dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    by_name = {lb["name"]: lb for lb in t["labels"]}
    attrs = {lb["id"]: {a["name"]: a["id"] for a in lb["attributes"]} for lb in t["labels"]}
    subs = {lb["id"]: {s["name"]: s["id"] for s in lb["sublabels"]} for lb in t["labels"]}
    return by_name, attrs, subs


def _from_cvat_xml(t: dict[str, Any], data: bytes) -> dict[str, Any]:
    """What CVAT's "CVAT 1.1" importer (``load_anno``) makes of an annotations.xml: images matched by
    name, labels and attributes by name, every object's source "file", the attributes it requires
    (a skeleton point's occluded/outside, a track shape's frame and keyframe) required here too."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(data)
    by_name, attrs, subs = _label_maps(t)
    frame_of = _frame_index(t)
    out: dict[str, list[Any]] = {"shapes": [], "tags": [], "tracks": []}

    def label(el: Any) -> dict[str, Any]:
        if el.get("label") not in by_name:
            raise ValueError(f"label {el.get('label')!r} is not in the task")
        return by_name[el.get("label")]

    def values(el: Any, lid: int) -> list[dict[str, Any]]:
        return [{"spec_id": attrs[lid][a.get("name")], "value": a.text or ""} for a in el.findall("attribute")]

    def shape(el: Any, lid: int, frame: int) -> dict[str, Any]:
        tag = el.tag
        common = {"frame": frame, "occluded": el.get("occluded") == "1", "z_order": int(el.get("z_order", 0)),
                  "rotation": float(el.get("rotation", 0.0)), "source": "file",
                  "group": int(el.get("group_id", 0)), "attributes": values(el, lid), "outside": el.get("outside") == "1"}
        if tag == "box":
            pts = [float(el.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
            return {**common, "type": "rectangle", "points": pts}
        if tag in ("polygon", "polyline", "points"):
            pts = [float(v) for pair in el.get("points").split(";") for v in pair.split(",")]
            return {**common, "type": tag, "points": pts}
        if tag == "mask":
            left, top, w, h = (int(el.get(k)) for k in ("left", "top", "width", "height"))
            runs = [float(v) for v in el.get("rle").split(",")]
            return {**common, "type": "mask", "points": [*runs, left, top, left + w - 1, top + h - 1]}
        if tag == "skeleton":
            elements = [{"frame": frame, "label_id": subs[lid][p.get("label")], "type": "points",
                         "points": [float(v) for v in p.get("points").split(",")], "occluded": p.attrib["occluded"] == "1",
                         "outside": p.attrib["outside"] == "1", "source": "file", "attributes": []}
                        for p in el.findall("points")]
            return {**common, "type": "skeleton", "points": [], "elements": elements}
        raise ValueError(f"unknown shape <{tag}>")

    video = t.get("video")

    def rel_frame(number: int) -> int:
        """CVAT's rel_frame_id: a track's frame is the video's frame number; one off the task's frames is an error."""
        if video is None:
            return number
        step = int(str(video["filter"] or "step=1").partition("=")[2])
        k, off = divmod(number - video["start"], step)
        if off or not 0 <= k < len(t["frames"]):
            raise ValueError(f"Unknown frame {number}")
        return k

    for img in root.findall("image"):
        stem = os.path.splitext(img.get("name"))[0]
        if stem not in frame_of:
            raise ValueError(f"image {img.get('name')!r} is not in the task")
        frame = frame_of[stem]
        for el in img:
            lb = label(el)
            if el.tag == "tag":
                out["tags"].append({"frame": frame, "label_id": lb["id"], "source": "file",
                                    "group": 0, "attributes": values(el, lb["id"])})
            else:
                out["shapes"].append({**shape(el, lb["id"], frame), "label_id": lb["id"]})
    for tr in root.findall("track"):
        lb = label(tr)
        shapes = [shape(el, lb["id"], rel_frame(int(el.attrib["frame"]))) for el in tr if el.attrib["keyframe"] == "1"]
        first = shapes[0]
        out["tracks"].append({"frame": first["frame"], "label_id": lb["id"], "group": 0,
                              "source": "file", "attributes": first["attributes"],
                              "shapes": [{**sh, "attributes": []} for sh in shapes], "elements": []})
    return out


def _from_coco(t: dict[str, Any], data: bytes) -> dict[str, Any]:
    """What CVAT's "COCO 1.0" importer makes of an instances file: bbox -> rectangle, a polygon list -> polygon,
    RLE -> mask; ``attributes`` occluded/rotation as shape fields and the rest as label attributes."""
    from pycocotools import mask as mask_utils

    doc = json.loads(data)
    by_name, attrs, _subs = _label_maps(t)
    frame_of = _frame_index(t)
    images = {im["id"]: frame_of[os.path.splitext(im["file_name"])[0]] for im in doc["images"]}
    cats = {c["id"]: by_name[c["name"]] for c in doc["categories"]}
    shapes = []
    for a in doc["annotations"]:
        lb, frame = cats[a["category_id"]], images[a["image_id"]]
        at = dict(a.get("attributes") or {})
        common = {"frame": frame, "label_id": lb["id"], "occluded": bool(at.pop("occluded", False)),
                  "rotation": float(at.pop("rotation", 0.0)), "z_order": 0, "source": "file", "group": 0,
                  "outside": False,
                  "attributes": [{"spec_id": attrs[lb["id"]][k], "value": str(v)} for k, v in at.items()]}
        seg = a.get("segmentation")
        if isinstance(seg, dict):
            h, w = seg["size"]
            rle = mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg
            m = mask_utils.decode(rle)
            ys, xs = m.nonzero()
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
            flat = m[y0:y1 + 1, x0:x1 + 1].reshape(-1)
            runs, cur, n = [], 0, 0
            for v in flat:
                if v != cur:
                    runs.append(n)
                    cur, n = v, 0
                n += 1
            runs.append(n)
            shapes.append({**common, "type": "mask", "points": [float(r) for r in runs] + [x0, y0, x1, y1]})
        elif seg:
            shapes.append({**common, "type": "polygon", "points": [float(v) for v in seg[0]]})
        else:
            x, y, w, h = a["bbox"]
            shapes.append({**common, "type": "rectangle", "points": [x, y, x + w, y + h]})
    return {"shapes": shapes, "tags": [], "tracks": []}


def _stored(o: dict[str, Any], ids: Any = None) -> dict[str, Any]:
    """An object as CVAT answers it: every field filled in (a skeleton's elements too, with ids of their own)."""
    out = {"group": 0, "source": "manual", "attributes": [], **o}
    if "points" in o:
        out = {"occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "elements": [], **out}
        out["points"] = [float(p) for p in o["points"]]
        out["elements"] = [_stored({"id": next(ids) if ids else e.get("id", 0), **e, "frame": out.get("frame", 0)},
                                   ids) for e in out["elements"]]
        for e in out["elements"]:
            e.pop("elements", None)
    return out


def _filled(d: dict[str, Any]) -> dict[str, Any]:
    """Without the empty fields: 2.17's schema marks some optional fields (assignee) as not nullable
    behind an ``allOf``, and CVAT leaves such fields out rather than send a null there."""
    return {k: v for k, v in d.items() if v is not None}


def _page(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(rows), "next": None, "previous": None, "results": rows}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its kept-alive connection is not an error; anything else would be a violation.
        pass


class _Handler(BaseHTTPRequestHandler):
    cvat: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        body: Any = None
        form: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        if raw and ctype.startswith("application/json"):
            body = json.loads(raw)
        elif raw and ctype.startswith("multipart/form-data"):
            form, files = _multipart(ctype, raw)
        elif raw and ctype.startswith("application/x-www-form-urlencoded"):
            form = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(raw.decode()).items()}
        c = self.cvat
        self.headers.raw_body = raw  # type: ignore[attr-defined]  # a TUS chunk is the body itself
        with c.lock:
            c.requests.append((method, path))
            c.reply_headers = {}
            tus = bool(TUS_FILE.match(path))
            problem = None if tus else c.check_request(method, path, query, body, {**form, **dict.fromkeys(files, "")})
            if problem is None:
                try:
                    status, out = c.handle(method, path, query, body, form, files, self.headers)
                except Exception as exc:  # noqa: BLE001 - a request the stand-in cannot serve is a finding, not a hang
                    status, out, problem = 500, None, f"{method} {path}: the stand-in failed: {exc!r}"
                if problem is None and status < 400 and not tus:
                    problem = c.check_response(method, path, status, out)
            extra = c.reply_headers
            if problem is not None:
                c.violations.append(problem)
                status, out = 500, {"detail": problem}
        data = b"" if out is None else json.dumps(out).encode()
        self.send_response(status)
        if path == "/api/auth/login" and status == 200:  # CVAT's login also opens a session
            self.send_header("Set-Cookie", "sessionid=stand-in-session; Path=/")
            self.send_header("Set-Cookie", "csrftoken=stand-in-csrf; Path=/")
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/vnd.cvat+json" if out is not None else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")


def _multipart(ctype: str, raw: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
    form: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files[name] = (filename, payload)
        else:
            value = payload.decode()
            if name in form:
                form[name] = [*(form[name] if isinstance(form[name], list) else [form[name]]), value]
            else:
                form[name] = value
    return form, files

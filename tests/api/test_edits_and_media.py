"""Tagging and metadata by ids or query, images and thumbnails with ranges and ETags (issue 13)."""

from __future__ import annotations

from sqlalchemy import select

from api_world import World
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Asset


def _ids(world: World, project: str) -> list[int]:
    with world.registry.session() as s:
        return list(s.scalars(select(Asset.id).where(Asset.project_id == get_project(s, project).id)
                              .order_by(Asset.id)))


def test_editors_tag_and_annotate_by_query_and_ids(world: World) -> None:
    h = world.as_("editor")
    r = world.client.post("/api/projects/alpha/tags", headers=h, json={"query": "category:circle", "tags": ["review"]})
    assert r.status_code == 200 and r.json()["changed"] > 0
    tagged = world.get("/api/projects/alpha/assets", "viewer", params={"q": "tag:review", "count": "true"}).json()
    circles = world.get("/api/projects/alpha/assets", "viewer", params={"q": "category:circle", "count": "true"}).json()
    assert tagged["total"] == circles["total"] == r.json()["changed"]
    again = world.client.post("/api/projects/alpha/tags", headers=h, json={"query": "category:circle", "tags": ["review"]})
    assert again.json()["changed"] == 0  # already there
    first = _ids(world, "alpha")[0]
    m = world.client.post("/api/projects/alpha/metadata", headers=h, json={"ids": [first], "key": "weather", "value": "rain"})
    assert m.json()["changed"] == 1
    detail = world.get(f"/api/projects/alpha/assets/{first}", "viewer").json()
    assert detail["metadata"] == {"weather": "rain"}
    assert world.get("/api/projects/alpha/assets", "viewer", params={"q": "weather:rain"}).json()["items"][0]["id"] == first
    off = world.client.post("/api/projects/alpha/tags", headers=h, json={"ids": [first], "tags": ["review"],
                                                                         "action": "remove"})
    assert off.json()["changed"] in (0, 1)


def test_another_projects_ids_are_not_found_and_nothing_is_written(world: World) -> None:
    beta = _ids(world, "beta")[0]
    alpha = _ids(world, "alpha")[0]
    r = world.client.post("/api/projects/alpha/tags", headers=world.as_("editor"),
                          json={"ids": [alpha, beta], "tags": ["mine"]})
    assert r.status_code == 404 and str(beta) in r.json()["detail"]
    assert world.get("/api/projects/alpha/assets", "viewer", params={"q": "tag:mine"}).json()["items"] == []
    both = world.client.post("/api/projects/alpha/tags", headers=world.as_("editor"),
                             json={"ids": [alpha], "query": "", "tags": ["x"]})
    assert both.status_code == 422 and "exactly one" in both.json()["detail"]
    viewer = world.client.post("/api/projects/alpha/tags", headers=world.as_("viewer"), json={"ids": [alpha], "tags": ["x"]})
    assert viewer.status_code == 403
    read_key = world.client.post("/api/projects/alpha/tags", headers=world.as_("key:read"),
                                 json={"ids": [alpha], "tags": ["x"]})
    assert read_key.status_code == 403  # the editor's read-only key is a viewer
    write_key = world.client.post("/api/projects/alpha/tags", headers=world.as_("key:write"),
                                  json={"ids": [alpha], "tags": ["x"]})
    assert write_key.status_code == 200


def test_images_stream_with_ranges_and_thumbnails_revalidate(world: World) -> None:
    first = _ids(world, "alpha")[0]
    with world.registry.session() as s:
        a = s.get(Asset, first)
        assert a is not None
        path, sha = a.storage_uri, a.sha256
    full = world.get(f"/api/projects/alpha/assets/{first}/image", "viewer")
    assert full.status_code == 200 and full.content == open(path, "rb").read()
    part = world.client.get(f"/api/projects/alpha/assets/{first}/image",
                            headers=world.as_("viewer", Range="bytes=0-99"))
    assert part.status_code == 206 and part.content == full.content[:100]
    thumb = world.get(f"/api/projects/alpha/assets/{first}/thumbnail", "viewer")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert thumb.headers["etag"] == f'"t-{sha}"'
    again = world.client.get(f"/api/projects/alpha/assets/{first}/thumbnail",
                             headers=world.as_("viewer", **{"If-None-Match": thumb.headers["etag"]}))
    assert again.status_code == 304 and again.content == b""
    with world.registry.session() as s:
        a = s.get(Asset, first)
        assert a is not None and a.thumbnail_uri  # made once, kept
    for bad in ("..%2F..%2Fetc%2Fpasswd", "1%2F..%2F2", "-1"):
        r = world.get(f"/api/projects/alpha/assets/{bad}/image", "viewer")
        assert r.status_code in (404, 422), bad

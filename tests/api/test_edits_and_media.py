"""Tagging and metadata by ids or query, images and thumbnails with ranges and ETags (issue 13)."""

from __future__ import annotations

from sqlalchemy import select

from api_world import World
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Asset, ProjectMember, User


def _user_id(world: World, who: str) -> int:
    with world.registry.session() as s:
        uid = s.scalar(select(User.id).where(User.email == f"{who}@example.com"))
        assert uid is not None
        return uid


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


def test_signed_media_urls_work_without_a_header_only_as_signed(world: World) -> None:
    page = world.get("/api/projects/alpha/assets", "viewer", params={"limit": 2}).json()["items"]
    thumb, image = page[0]["thumbnail_url"], page[0]["image_url"]
    assert world.client.get(thumb).status_code == 200  # anonymous, as an <img src> asks
    assert world.client.get(image).content[:2] == b"\xff\xd8"
    other = page[1]["thumbnail_url"].split("?")[0] + "?" + thumb.split("?")[1]  # this signature, another image
    tampered = thumb.replace("sig=", "sig=0")[:len(thumb)]
    stranger = thumb.replace("u=", "u=9")  # another user's id under the same signature
    for bad in (other, tampered, stranger, thumb.split("?")[0], thumb.replace("/thumbnail", "/image")):
        assert world.client.get(bad).status_code == 401, bad
    expired = thumb.replace("exp=", "exp=1")  # a different expiry breaks the signature too
    assert world.client.get(expired).status_code == 401
    # the viewer leaves the project: their URLs stop working at once
    with world.registry.session() as s:
        s.execute(ProjectMember.__table__.delete().where(ProjectMember.user_id == _user_id(world, "viewer")))
    assert world.client.get(thumb).status_code == 404


def test_the_gallery_gets_every_objects_shape_in_pixels(world: World) -> None:
    page = world.get("/api/projects/alpha/assets", "viewer", params={"limit": 12, "shapes": "true"}).json()["items"]
    assert sum(len(i["shapes"]) for i in page) == sum(i["objects"] for i in page) > 0
    first = next(i for i in page if i["shapes"])
    detail = world.get(f"/api/projects/alpha/assets/{first['id']}", "viewer").json()
    assert [(o["id"], o["bbox"], o["polygons"]) for o in detail["objects_list"]] == \
           [(sh["id"], sh["bbox"], sh["polygons"]) for sh in first["shapes"]]
    kinds = {sh["kind"] for i in page for sh in i["shapes"]}
    assert kinds and kinds <= {"box", "polygon", "mask", "keypoints", "polyline", "label", "caption"}
    for i in page:
        for sh in i["shapes"]:
            if sh["bbox"]:
                x, y, w, h = sh["bbox"]
                assert -1 <= x and x + w <= i["width"] + 1 and y + h <= i["height"] + 1
    assert world.get("/api/projects/alpha/assets", "viewer", params={"limit": 2}).json()["items"][0]["shapes"] is None


def test_one_image_is_patched_all_or_nothing(world: World) -> None:
    first = _ids(world, "alpha")[0]
    url = f"/api/projects/alpha/assets/{first}"
    r = world.client.patch(url, headers=world.as_("editor"),
                           json={"tags_add": ["keep", "drop"], "metadata_set": {"color": "red", "n": 3}})
    assert r.status_code == 200, r.text
    r = world.client.patch(url, headers=world.as_("editor"), json={"tags_remove": ["drop"], "metadata_unset": ["n"]})
    assert r.status_code == 200
    detail = world.get(url, "viewer").json()
    assert detail["tags"] == ["keep"] and detail["metadata"] == {"color": "red"}
    bad = world.client.patch(url, headers=world.as_("editor"), json={"tags_add": ["new"], "metadata_set": {"": 1}})
    assert bad.status_code == 400
    assert world.get(url, "viewer").json()["tags"] == ["keep"]  # the tag before the bad key was not kept
    assert world.client.patch(url, headers=world.as_("viewer"), json={"tags_add": ["x"]}).status_code == 403
    beta = _ids(world, "beta")[0]
    r = world.client.patch(f"/api/projects/alpha/assets/{beta}", headers=world.as_("editor"), json={"tags_add": ["x"]})
    assert r.status_code == 404

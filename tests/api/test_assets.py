"""Images by query with keyset pages, one image with its objects, problem JSON for bad queries (issue 13)."""

from __future__ import annotations

from api_world import World


def test_query_pages_follow_the_keyset_to_the_end(world: World) -> None:
    first = world.get("/api/projects/alpha/assets", "viewer", params={"limit": 5, "count": "true"}).json()
    assert len(first["items"]) == 5 and first["total"] == 12 and first["next_after"] == first["items"][-1]["id"]
    seen = [i["id"] for i in first["items"]]
    after = first["next_after"]
    while after is not None:
        page = world.get("/api/projects/alpha/assets", "viewer", params={"limit": 5, "after": after}).json()
        seen += [i["id"] for i in page["items"]]
        after = page["next_after"]
    assert len(seen) == 12 and seen == sorted(seen)
    everything = world.get("/api/projects/alpha/assets", "viewer", params={"limit": 500}).json()
    assert [i["id"] for i in everything["items"]] == seen and everything["next_after"] is None
    some = world.get("/api/projects/alpha/assets", "viewer", params={"q": "category:circle", "count": "true"}).json()
    assert 0 < some["total"] < 12 and all(i["objects"] > 0 for i in some["items"])


def test_one_image_with_its_objects(world: World) -> None:
    item = world.get("/api/projects/alpha/assets", "viewer", params={"q": "category:circle", "limit": 1}).json()
    detail = world.get(f"/api/projects/alpha/assets/{item['items'][0]['id']}", "viewer").json()
    assert detail["objects"] == len(detail["objects_list"]) > 0
    assert any(o["category"] == "circle" for o in detail["objects_list"])
    assert all(o["bbox"] is None or len(o["bbox"]) == 4 for o in detail["objects_list"])


def test_bad_input_is_a_problem_with_the_column(world: World) -> None:
    bad = world.get("/api/projects/alpha/assets", "viewer", params={"q": "width>>3"})
    body = bad.json()
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert body["title"] == "Bad query" and body["column"] >= 1 and body["query"] == "width>>3"
    sqlish = world.get("/api/projects/alpha/assets", "viewer", params={"q": "tag:'; DROP TABLE assets; --"})
    assert sqlish.status_code in (200, 400)
    assert world.get("/api/projects/alpha/assets", "viewer", params={"limit": 10}).json()["items"]  # still there
    for params in ({"limit": 0}, {"limit": 100000}, {"after": -1}):
        r = world.get("/api/projects/alpha/assets", "viewer", params=params)
        assert r.status_code == 422 and r.json()["status"] == 422, params
    assert world.client.get("/api/nowhere").status_code == 404
    broken = world.client.post("/api/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.headers["content-type"].startswith("application/problem+json")


def test_health_reports_the_database_and_storage(world: World) -> None:
    r = world.client.get("/api/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok"
    # where they are: admins only; the tests' DAGSTER_HOME (tests/api/conftest.py) is checked too
    assert body["checks"] == {"database": {"ok": True}, "storage": {"ok": True}, "dagster": {"ok": True}}
    assert set(body["not_configured"]) == {"chroma"}
    assert world.get("/api/health/details", "owner").status_code == 403
    details = world.get("/api/health/details", "root").json()
    assert details["checks"]["database"]["detail"] == world.registry.settings.database_shown  # a password masked


def test_pages_sorted_by_any_field_follow_their_cursor(world: World) -> None:
    def walk(sort: str, q: str = "") -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        cursor = None
        while True:
            params = {"sort": sort, "limit": 5, "q": q, **({"cursor": cursor} if cursor else {})}
            page = world.get("/api/projects/alpha/assets", "viewer", params=params).json()
            out += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    by_id = walk("id")
    assert [i["id"] for i in by_id] == sorted(i["id"] for i in by_id) and len(by_id) == 12
    assert [i["id"] for i in walk("-id")] == [i["id"] for i in reversed(by_id)]
    for field in ("width", "file_name", "-height"):
        got = walk(field)
        key = field.lstrip("-")
        want = sorted(by_id, key=lambda i: (i[key], i["id"]), reverse=field.startswith("-"))
        assert [i["id"] for i in got] == [i["id"] for i in want], field
    circles = walk("-width", "category:circle")
    assert 0 < len(circles) < 12 and len({i["id"] for i in circles}) == len(circles)
    for bad in ({"sort": "password"}, {"cursor": "garbage!"}, {"sort": "width", "after": 3}):
        r = world.get("/api/projects/alpha/assets", "viewer", params=bad)
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), bad

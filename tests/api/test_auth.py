"""Login, refresh rotation and reuse, logout, API keys: the real app on both databases (issue 13)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from api_world import PASSWORD, World
from dsgen_core.registry.schema import ApiKey, RefreshToken, User, utcnow


def test_login_gives_tokens_and_a_wrong_password_is_401_problem_json(world: World) -> None:
    bad = world.client.post("/api/auth/login", json={"email": "viewer@example.com", "password": "nope nope nope"})
    assert bad.status_code == 401 and bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["detail"] == "wrong email or password" and "WWW-Authenticate" in bad.headers
    unknown = world.client.post("/api/auth/login", json={"email": "ghost@example.com", "password": PASSWORD})
    assert unknown.json()["detail"] == bad.json()["detail"]  # no telling which accounts exist
    me = world.get("/api/me", "viewer").json()
    assert me["email"] == "viewer@example.com" and me["projects"] == {"alpha": "viewer"} and me["scopes"] is None
    with world.registry.session() as s:
        stored = s.scalar(select(User.hashed_password).where(User.email == "viewer@example.com"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_login(world: World) -> None:
    first = world.client.post("/api/auth/login", json={"email": "editor@example.com", "password": PASSWORD}).json()
    second = world.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    reused = world.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and "used before" in reused.json()["detail"]
    # the thief's reuse also kills the token the rightful holder got
    after = world.client.post("/api/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401 and "revoked" in after.json()["detail"]
    with world.registry.session() as s:
        editor = s.scalar(select(User.id).where(User.email == "editor@example.com"))
        tokens = list(s.scalars(select(RefreshToken).where(RefreshToken.user_id == editor)))
    # the fixture's own login is another family, untouched; this login's two tokens are revoked
    assert sorted(t.revoked_at is None for t in tokens) == [False, False, True]


def test_logout_revokes_the_access_token_and_its_refresh_family(world: World) -> None:
    pair = world.client.post("/api/auth/login", json={"email": "viewer@example.com", "password": PASSWORD}).json()
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    assert world.client.get("/api/me", headers=h).status_code == 200
    out = world.client.post("/api/auth/logout", headers=h, json={"refresh_token": pair["refresh_token"]})
    assert out.status_code == 204
    assert world.client.get("/api/me", headers=h).status_code == 401
    assert world.client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    # A client idle past its access token's life ends its login with the refresh token alone.
    idle = world.client.post("/api/auth/login", json={"email": "viewer@example.com", "password": PASSWORD}).json()
    assert world.client.post("/api/auth/logout", json={"refresh_token": idle["refresh_token"]}).status_code == 204
    assert world.client.get("/api/me", headers={"Authorization": f"Bearer {idle['access_token']}"}).status_code == 401
    key = world.client.post("/api/auth/logout", headers=world.as_("key:read"), json={})
    assert key.status_code == 400 and "dsgen keys revoke" in key.json()["detail"]
    assert world.client.post("/api/auth/logout", json={}).status_code == 400


def test_a_reused_refresh_token_ends_the_access_tokens_of_its_login_too(world: World) -> None:
    first = world.client.post("/api/auth/login", json={"email": "viewer@example.com", "password": PASSWORD}).json()
    second = world.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    h = {"Authorization": f"Bearer {second['access_token']}"}
    assert world.client.get("/api/me", headers=h).status_code == 200
    assert world.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    assert world.client.get("/api/me", headers=h).status_code == 401
    assert world.get("/api/me", "viewer").status_code == 200  # another login of the same user is not touched


def test_two_refreshes_with_one_token_at_once_cannot_both_succeed(world: World) -> None:
    """Review finding: read-then-write let two concurrent uses of one refresh token both pass."""
    from concurrent.futures import ThreadPoolExecutor

    pair = world.client.post("/api/auth/login", json={"email": "editor@example.com", "password": PASSWORD}).json()
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda _i: world.client.post(
            "/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code, range(4)))
    assert codes.count(200) <= 1 and set(codes) <= {200, 401, 500} and 500 not in codes


def test_forged_expired_and_malformed_tokens_are_401(world: World) -> None:
    import jwt

    good = world.tokens["viewer"]
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode({**claims, "sub": "1"}, "not the server's key, but long enough for HS256", algorithm="HS256")
    expired = jwt.encode({**claims, "exp": claims["iat"] - 10}, world.client.app.state.signing_key, algorithm="HS256")
    for token in (forged, expired, "garbage", good[:-3] + "abc"):
        r = world.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    assert "expired" in world.client.get("/api/me", headers={"Authorization": f"Bearer {expired}"}).json()["detail"]
    assert world.client.get("/api/me", headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 401


def test_api_keys_are_hashed_scoped_counted_expired_and_revoked(world: World) -> None:
    read = world.keys["read"]
    me = world.client.get("/api/me", headers={"X-API-Key": read}).json()
    assert me["email"] == "editor@example.com" and me["scopes"] == ["read"] and me["projects"] == {"alpha": "viewer"}
    assert world.get("/api/me", "key:write").json()["projects"] == {"alpha": "editor"}
    with world.registry.session() as s:
        rows = {k.name: k for k in s.scalars(select(ApiKey))}
        assert read.split("_", 2)[2] not in rows["editor-read"].key_hash  # only the hash is kept
        assert rows["editor-read"].total_requests == 1 and rows["editor-read"].last_used_at is not None
        rows["editor-write"].expires_at = utcnow() - timedelta(seconds=1)
    assert "expired" in world.get("/api/me", "key:write").json()["detail"]
    with world.registry.session() as s:
        s.scalars(select(ApiKey).where(ApiKey.name == "editor-read")).one().revoked_at = utcnow()
    r = world.get("/api/me", "key:read")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    guessed = world.client.get("/api/me", headers={"X-API-Key": read[:-4] + "AAAA"})
    assert guessed.status_code == 401 and guessed.json()["detail"] == "unknown API key"
    for odd in ("dsg_" + "9" * 30 + "_x", "dsg_" + "9" * 5000 + "_x", "dsg_\u00b2_x", "dsg__x"):
        r = world.client.get("/api/me", headers={"X-API-Key": odd.encode("latin-1")})  # "²" is a digit, not ASCII
        assert r.status_code == 401, odd

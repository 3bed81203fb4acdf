"""/aliases: listing for the token's domain; admin-only changes with the CLI's validation."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from .conftest import bearer, token_for


async def test_list_add_remove_round_trip(api: TestClient, runtime, alice, bob) -> None:
    assert await (await api.get("/aliases", headers=alice)).json() == {"domain": "example.com", "aliases": []}
    resp = await api.post("/aliases", headers=bob, json={"pattern": "sales-.*", "target": "alice"})
    assert resp.status == 201
    assert await resp.json() == {"pattern": "sales-.*", "target": "alice@example.com", "position": 1}
    resp = await api.post("/aliases", headers=bob, json={"pattern": ".*", "target": "bob@example.com"})
    assert resp.status == 201
    body = await (await api.get("/aliases", headers=alice)).json()
    assert [(a["pattern"], a["target"]) for a in body["aliases"]] == [("sales-.*", "alice@example.com"),
                                                                      (".*", "bob@example.com")]
    assert (await runtime.aliases.resolve("sales-eu@example.com")).account.address == "alice@example.com"
    assert (await api.delete("/aliases/sales-.%2A", headers=bob)).status == 204
    assert (await api.delete("/aliases", headers=bob, json={"pattern": ".*"})).status == 204
    assert (await (await api.get("/aliases", headers=alice)).json())["aliases"] == []


async def test_path_pattern_with_slash_and_unicode(api: TestClient, bob) -> None:
    await api.post("/aliases", headers=bob, json={"pattern": "a/b", "target": "alice"})
    await api.post("/aliases", headers=bob, json={"pattern": "für-.*", "target": "alice"})
    assert (await api.delete("/aliases/a%2Fb", headers=bob)).status == 204
    assert (await api.delete("/aliases/f%C3%BCr-.%2A", headers=bob)).status == 204


@pytest.mark.parametrize("method, path, kwargs", [
    ("post", "/aliases", {"json": {"pattern": "x", "target": "alice"}}),
    ("delete", "/aliases", {"json": {"pattern": "x"}}),
    ("delete", "/aliases/x", {}),
])
async def test_non_admin_gets_403(api: TestClient, alice, method: str, path: str, kwargs: dict) -> None:
    resp = await getattr(api, method)(path, headers=alice, **kwargs)
    assert resp.status == 403 and "error" in await resp.json()


async def test_revoked_admin_gets_403(api: TestClient, runtime, bob) -> None:
    await runtime.accounts.set_admin("bob@example.com", False)
    resp = await api.post("/aliases", headers=bob, json={"pattern": "x", "target": "alice"})
    assert resp.status == 403


@pytest.mark.parametrize("body, status", [
    ({"pattern": "(a+)+", "target": "alice"}, 400),          # catastrophic backtracking
    ({"pattern": "[unclosed", "target": "alice"}, 400),
    ({"pattern": "", "target": "alice"}, 400),
    ({"pattern": "x" * 300, "target": "alice"}, 400),
    ({"pattern": "ok", "target": "nobody"}, 400),             # target not an existing user
    ({"pattern": "ok", "target": "alice@other.org"}, 400),    # target in another domain
    ({"pattern": "ok"}, 400),
    ({"pattern": 1, "target": "alice"}, 400),
])
async def test_invalid_alias_rules(api: TestClient, bob, body: dict, status: int) -> None:
    resp = await api.post("/aliases", headers=bob, json=body)
    assert resp.status == status and "error" in await resp.json()


async def test_duplicate_is_409_and_unknown_is_404(api: TestClient, bob) -> None:
    assert (await api.post("/aliases", headers=bob, json={"pattern": "dup", "target": "alice"})).status == 201
    assert (await api.post("/aliases", headers=bob, json={"pattern": "dup", "target": "bob"})).status == 409
    assert (await api.delete("/aliases/missing", headers=bob)).status == 404
    assert (await api.delete("/aliases", headers=bob, json={"pattern": "missing"})).status == 404


async def test_admin_only_reaches_its_own_domain(api: TestClient, runtime, bob) -> None:
    await runtime.accounts.add_user("dave@other.org", "pw-dave", admin=True)
    await runtime.aliases.add("example.com", "keep", "alice")
    dave = bearer(await token_for(api, "dave@other.org", "pw-dave"))
    assert (await (await api.get("/aliases", headers=dave)).json())["aliases"] == []
    assert (await api.delete("/aliases/keep", headers=dave)).status == 404
    assert [r.pattern for r in await runtime.aliases.list("example.com")] == ["keep"]

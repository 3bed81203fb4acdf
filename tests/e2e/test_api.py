"""The REST API on 9002 with http.client (SPEC Part 1 "Exchange REST API", Part 3 shapes)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from rmail.e2e.clients import Api, folder_path, message
from rmail.e2e.target import Backend, Target


@pytest.fixture
def alice_api(target: Target) -> Api:
    api = Api(target)
    api.login(target.alice)
    return api


@pytest.fixture
def bob_api(target: Target) -> Api:
    api = Api(target)
    api.login(target.bob)
    return api


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_login_returns_a_one_hour_bearer_token(target: Target) -> None:
    data = Api(target).login(target.alice)
    assert data["token_type"] == "Bearer" and data["expires_in"] == 3600
    assert data["user"] == target.alice.address and data["admin"] is False
    claims = _claims(data["token"])
    assert claims["exp"] - claims["iat"] == 3600


def test_login_with_full_address_and_admin_flag(target: Target) -> None:
    reply = Api(target).request("POST", "/auth/login",
                                {"username": target.bob.address, "password": target.bob.password})
    assert reply.status == 200 and reply.json()["admin"] is True


def test_bad_login_and_missing_token_get_401(target: Target) -> None:
    api = Api(target)
    bad = api.request("POST", "/auth/login", {"username": target.alice.address, "password": "wrong-password"})
    assert bad.status == 401 and "error" in bad.json()
    assert api.request("GET", "/folders").status == 401
    assert Api(target, token="not.a.token").request("GET", "/folders").status == 401


def test_folders_list_counts(alice_api: Api) -> None:
    reply = alice_api.request("GET", "/folders")
    assert reply.status == 200
    folders = {f["name"]: f for f in reply.json()["folders"]}
    assert "INBOX" in folders
    for entry in folders.values():
        assert {"name", "messages", "unseen", "special_use"} <= set(entry)
    assert folders["Sent"]["special_use"] == "\\Sent"


def test_message_append_get_flags_delete(target: Target, alice_api: Api) -> None:
    subject = target.unique("rest")
    raw = message("carol@example.org", target.alice.address, subject, "Hello over REST\r\n")
    created = alice_api.request("POST", folder_path("INBOX", "messages"), raw=raw,
                                headers={"Content-Type": "message/rfc822"})
    assert created.status == 201, created.body
    uid = created.json()["uid"]

    listing = alice_api.request("GET", folder_path("INBOX", "messages") + "?offset=0&limit=5").json()
    assert listing["limit"] == 5 and listing["offset"] == 0 and listing["total"] >= 1
    assert listing["messages"][0]["uid"] == uid, "newest first"
    assert listing["messages"][0]["subject"] == subject

    one = alice_api.request("GET", folder_path("INBOX", "messages", str(uid)))
    assert one.status == 200
    detail = one.json()
    assert detail["subject"] == subject and "Hello over REST" in detail["text"]
    assert {"cc", "message_id", "headers", "html", "attachments"} <= set(detail)
    rfc822 = alice_api.request("GET", folder_path("INBOX", "messages", str(uid)),
                               headers={"Accept": "message/rfc822"})
    assert rfc822.body == raw

    flags = alice_api.request("PATCH", folder_path("INBOX", "messages", str(uid), "flags"),
                              {"flags": ["\\Seen", "\\Flagged"]})
    assert flags.status == 200 and set(flags.json()["flags"]) == {"\\Seen", "\\Flagged"}

    assert alice_api.request("DELETE", folder_path("INBOX", "messages", str(uid))).status == 204
    assert alice_api.request("GET", folder_path("INBOX", "messages", str(uid))).status == 404


def test_bad_paging_and_unknown_folder(alice_api: Api) -> None:
    assert alice_api.request("GET", folder_path("INBOX", "messages") + "?limit=-1").status == 400
    assert alice_api.request("GET", folder_path("INBOX", "messages") + "?limit=501").status == 400
    missing = alice_api.request("GET", folder_path("No such folder", "messages"))
    assert missing.status == 404 and "error" in missing.json()


def test_send_delivers(target: Target, backend: Backend, alice_api: Api) -> None:
    subject = target.unique("send")
    reply = alice_api.request("POST", "/messages/send",
                              {"to": [target.bob.address], "subject": subject, "body": "Test"})
    assert reply.status == 202, reply.body
    assert reply.json()["message_id"]
    assert len(backend.wait_for_message(target.bob.address, subject)) == 1


def test_aliases_admin_only(target: Target, alice_api: Api, bob_api: Api) -> None:
    pattern = f"rest-{target.unique('a').split('-')[1]}-.*"
    rule = {"pattern": pattern, "target": target.alice.local}
    assert alice_api.request("POST", "/aliases", rule).status == 403
    assert bob_api.request("POST", "/aliases", rule).status == 201
    try:
        listed = alice_api.request("GET", "/aliases").json()["aliases"]
        assert {"pattern": pattern, "target": target.alice.local} in listed or any(
            a["pattern"] == pattern and a["target"] in (target.alice.local, target.alice.address) for a in listed)
        assert bob_api.request("POST", "/aliases", {"pattern": "x", "target": "nobody-here"}).status == 400
    finally:
        deleted = bob_api.request("DELETE", "/aliases/" + urllib.parse.quote(pattern, safe=""))
    assert deleted.status == 204
    assert all(a["pattern"] != pattern for a in alice_api.request("GET", "/aliases").json()["aliases"])


def test_cors_preflight(target: Target) -> None:
    reply = Api(target).request("OPTIONS", "/folders", headers={
        "Origin": "https://webmail.example.com", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert reply.status == 204
    assert "access-control-allow-origin" in reply.headers


def test_autoconfig_documents(target: Target) -> None:
    api = Api(target)
    thunderbird = api.request("GET", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress="
                              + urllib.parse.quote(target.alice.address))
    assert thunderbird.status == 200 and b"<clientConfig" in thunderbird.body
    assert str(target.port("imap")).encode() in thunderbird.body
    outlook = api.request("POST", "/autodiscover/autodiscover.xml", raw=(
        '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/'
        'autodiscover/outlook/requestschema/2006"><Request><EMailAddress>'
        f'{target.alice.address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/'
        'exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request>'
        '</Autodiscover>').encode(), headers={"Content-Type": "text/xml"})
    assert outlook.status == 200 and b"<Autodiscover" in outlook.body

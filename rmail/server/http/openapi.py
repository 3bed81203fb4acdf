"""The OpenAPI 3 description of this API, served at GET /openapi.json.

Kept next to the handlers and checked against them by a schemathesis run in tests/http:
every documented status is one a handler can return, and every body matches its schema.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aiohttp import web

from .auth import TOKEN_LIFETIME
from .messages import DEFAULT_LIMIT, MAX_LIMIT

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


def ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": ref(schema)}}}


E400 = error("Invalid input (malformed JSON, a missing or mistyped field, a bad value).")
E401 = error("Missing, malformed, expired or wrongly signed bearer token.")
E403 = error("The token is valid but its user may not do this (not an admin).")
E404 = error("No such folder, message or alias for this user.")
E413 = error("The request body or the resulting message is too large.")
E507 = error("The mailbox is full: the message would take its user over the storage quota.")
AUTH = {"400": E400, "401": E401}

FOLDER = {"name": "folder", "in": "path", "required": True,
          "description": "Folder (IMAP mailbox) name, URL-encoded; \"/\" separates levels and may be sent as %2F.",
          "schema": {"type": "string", "minLength": 1}}
UID = {"name": "uid", "in": "path", "required": True, "description": "The message's IMAP UID in this folder.",
       "schema": {"type": "integer", "minimum": 1, "maximum": 4294967295}}

STR = {"type": "string"}
TEXT = {"type": "string", "minLength": 1}
EMAIL = {"type": "string", "format": "email", "maxLength": 254}
NSTR = {"type": "string", "nullable": True}
INT = {"type": "integer", "minimum": 0}
FLAGS = {"type": "array", "items": STR, "description": "System flags (\\Seen, \\Answered, \\Flagged, \\Deleted,"
         " \\Draft) and keywords."}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required}


ENTRY = {"uid": {"type": "integer", "minimum": 1}, "flags": FLAGS, "size": INT,
         "date": {"type": "string", "format": "date-time", "description": "Date header, else arrival time (UTC)."},
         "received": {"type": "string", "format": "date-time", "description": "Arrival time (UTC)."},
         "from": STR, "to": STR, "subject": STR, "preview": STR}

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": STR}),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]},
                   "listeners": {"type": "array", "items": STR, "description": "\"protocol host:port\" each."},
                   "uptime_seconds": {"type": "number", "minimum": 0},
                   "storage_low": {"type": "boolean", "description": "New mail is refused for want of disk space."}}),
    "Unhealthy": obj({"status": {"type": "string", "enum": ["unavailable"]}, "error": STR}),
    "LoginRequest": obj({"username": {"type": "string", "minLength": 1, "maxLength": 320,
                                      "description": "Local part, or a full address."},
                         "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                         "domain": {"type": "string", "minLength": 1, "maxLength": 253,
                                    "description": "Needed when username is a local part."}},
                        ["username", "password"]),
    "LoginResponse": obj({"token": STR, "token_type": {"type": "string", "enum": ["Bearer"]},
                          "expires_in": {"type": "integer", "enum": [TOKEN_LIFETIME]}, "user": STR,
                          "admin": {"type": "boolean"}}),
    "Folder": obj({"name": STR, "messages": INT, "unseen": INT, "special_use": NSTR, "parent": NSTR,
                   "selectable": {"type": "boolean"}, "subscribed": {"type": "boolean"}, "size": INT,
                   "uidvalidity": INT, "uidnext": INT}),
    "FolderList": obj({"delimiter": STR, "folders": {"type": "array", "items": ref("Folder")}}),
    "MessageEntry": obj(ENTRY),
    "MessageList": obj({"total": INT, "offset": INT, "limit": INT,
                        "messages": {"type": "array", "items": ref("MessageEntry")}}),
    "Message": obj({**ENTRY, "cc": STR, "message_id": STR,
                    "headers": {"type": "array", "items": obj({"name": STR, "value": STR})},
                    "text": NSTR, "html": NSTR,
                    "attachments": {"type": "array", "items": obj({"filename": STR, "content_type": STR,
                                                                   "size": INT})}}),
    "AppendResponse": obj({"uid": {"type": "integer", "minimum": 1}}),
    "FlagsRequest": obj({"flags": {**FLAGS, "maxItems": 64, "items": {
        "type": "string", "pattern": "^(\\\\(Seen|Answered|Flagged|Deleted|Draft)|[!#$&'+,./0-9:;<=>?@A-Z^_`a-z|}~-]{1,128})$"}}}),
    "FlagsResponse": obj({"uid": {"type": "integer", "minimum": 1}, "flags": FLAGS}),
    "Recipients": {"oneOf": [EMAIL, {"type": "array", "items": EMAIL, "maxItems": 100}],
                   "description": "One address or a list of plain addresses (local@domain)."},
    "Attachment": obj({"filename": {"type": "string", "minLength": 1, "maxLength": 255},
                       "content_type": {"type": "string", "default": "application/octet-stream",
                                        "pattern": "^[A-Za-z0-9][A-Za-z0-9.+-]{0,40}/[A-Za-z0-9][A-Za-z0-9.+-]{0,40}$"},
                       "content_base64": {"type": "string", "format": "byte"}}, ["filename", "content_base64"]),
    "SendRequest": obj({"to": ref("Recipients"), "cc": ref("Recipients"), "bcc": ref("Recipients"),
                        "subject": STR, "body": STR, "html": STR,
                        "attachments": {"type": "array", "items": ref("Attachment")}},
                       ["to", "subject", "body"]),
    "SendResponse": obj({"message_id": STR,
                         "warning": {"type": "string", "description": "Set when the mail went out but its copy "
                                                                       "could not be filed in Sent."}},
                        required=["message_id"]),
    "Alias": obj({"pattern": STR, "target": STR, "position": {"type": "integer", "minimum": 1}}),
    "AliasList": obj({"domain": STR, "aliases": {"type": "array", "items": ref("Alias")}}),
    "AliasRequest": obj({"pattern": {"type": "string", "minLength": 1, "maxLength": 256,
                                     "description": "A regular expression (RE2) over the whole local part."},
                         "target": {"type": "string", "minLength": 1,
                                    "description": "A user of the domain: local part or address."}}),
    "AliasDeleteRequest": obj({"pattern": TEXT}),
    "DnsRecord": obj({"name": STR, "type": {"type": "string", "enum": ["MX", "TXT", "SRV", "CNAME"]},
                      "ttl": INT, "value": STR,
                      "rdata": {"type": "string", "description": "The data as written in a zone file."},
                      "purpose": STR, "required": {"type": "boolean"}}),
    "DnsRecords": obj({"domain": STR, "records": {"type": "array", "items": ref("DnsRecord")},
                       "zone": {"type": "string", "description": "All records as a zone-file fragment."}}),
}

XML = {"application/xml": {"schema": {"type": "string"}}}


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/auth/login": {"post": {
            "summary": "Log in with a password; returns a bearer token valid for 3600 s.", "security": [],
            "requestBody": body("LoginRequest"),
            "responses": {"200": ok("A token.", "LoginResponse"), "400": E400, "401": error("Wrong credentials."),
                          "413": E413, "429": error("Too many failed logins from this address; see Retry-After.")}}},
        "/folders": {"get": {"summary": "The user's folders with message and unseen counts.",
                             "responses": {"200": ok("Folders, INBOX first.", "FolderList"), "401": E401}}},
        "/folders/{folder}/messages": {
            "parameters": [FOLDER],
            "get": {"summary": "Messages of a folder, newest first.",
                    "parameters": [
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                                     "maximum": 2**31 - 1, "default": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                                    "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}}],
                    "responses": {"200": ok("One page.", "MessageList"), **AUTH, "404": E404}},
            "post": {"summary": "Append a raw RFC 5322 message; IMAP BODY[] returns the same bytes.",
                     "requestBody": {"required": True, "content": {"message/rfc822": {
                         "schema": {"type": "string", "format": "binary"}}}},
                     "responses": {"201": ok("Stored durably.", "AppendResponse"), **AUTH, "404": E404,
                                   "413": E413, "415": error("The body is not message/rfc822."),
                                   "507": E507}}},
        "/folders/{folder}/messages/{uid}": {
            "parameters": [FOLDER, UID],
            "get": {"summary": "One message, decoded; raw bytes with Accept: message/rfc822 or ?format=raw.",
                    "parameters": [{"name": "format", "in": "query",
                                    "schema": {"type": "string", "enum": ["json", "raw"], "default": "json"}}],
                    "responses": {"200": {"description": "The message.", "content": {
                        JSON: {"schema": ref("Message")},
                        "message/rfc822": {"schema": {"type": "string", "format": "binary"}}}},
                        **AUTH, "404": E404}},
            "delete": {"summary": "Delete the message (whatever its flags).",
                       "responses": {"204": {"description": "Deleted."}, **AUTH, "404": E404}}},
        "/folders/{folder}/messages/{uid}/flags": {
            "parameters": [FOLDER, UID],
            "patch": {"summary": "Replace the message's flags exactly (\\Recent and unknown system flags refused).",
                      "requestBody": body("FlagsRequest"),
                      "responses": {"200": ok("The flags now.", "FlagsResponse"), **AUTH, "404": E404,
                                    "413": E413}}},
        "/messages/send": {"post": {
            "summary": "Compose and deliver a message from the user; a copy is filed in Sent.",
            "requestBody": body("SendRequest"),
            "responses": {"202": ok("Delivered locally and/or queued.", "SendResponse"), **AUTH, "413": E413,
                          "429": error("The user's sending rate ([limits] send_per_minute) is used up;"
                                       " see Retry-After."),
                          "503": error("Remote delivery is unavailable right now; retry later."),
                          "507": error("The sender's mailbox is full (no room for the Sent copy), or every"
                                       " recipient's is.")}}},
        "/aliases": {
            "get": {"summary": "Alias rules of the token's domain, in declaration order.",
                    "responses": {"200": ok("Rules.", "AliasList"), "401": E401, "404": E404}},
            "post": {"summary": "Append an alias rule (admins of the domain).", "requestBody": body("AliasRequest"),
                     "responses": {"201": ok("Added.", "Alias"), **AUTH, "403": E403, "404": E404, "413": E413,
                                   "409": error("The pattern is already a rule.")}},
            "delete": {"summary": "Remove an alias rule named in the body (admins).",
                       "requestBody": body("AliasDeleteRequest"),
                       "responses": {"204": {"description": "Removed."}, **AUTH, "403": E403, "404": E404,
                                     "413": E413}}},
        "/aliases/{pattern}": {"delete": {
            "summary": "Remove an alias rule named in the path, URL-encoded (admins).",
            "parameters": [{"name": "pattern", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1}}],
            "responses": {"204": {"description": "Removed."}, **AUTH, "403": E403, "404": E404}}},
        "/domains/{domain}/dns": {"get": {
            "summary": "The DNS records to publish for the domain: MX, SPF, DKIM, DMARC, SRV, MTA-STS, TLS-RPT "
                       "(admins of that domain).",
            "parameters": [{"name": "domain", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 253}}],
            "responses": {"200": ok("The records.", "DnsRecords"), **AUTH, "403": E403}}},
        "/.well-known/mta-sts.txt": {"get": {
            "summary": "The MTA-STS policy (RFC 8461) when the Host is mta-sts.<a local domain>.", "security": [],
            "responses": {"200": {"description": "The policy.", "content": {"text/plain": {"schema": STR}}},
                          "404": E404}}},
        "/.well-known/autoconfig/mail/config-v1.1.xml": {"get": {
            "summary": "Thunderbird autoconfig (clientConfig 1.1).", "security": [],
            "parameters": [{"name": "emailaddress", "in": "query", "schema": EMAIL}],
            "responses": {"200": {"description": "clientConfig XML.", "content": XML}, "400": E400}}},
        "/autodiscover/autodiscover.xml": {"post": {
            "summary": "Outlook autodiscover (POX); reads EMailAddress from the request.", "security": [],
            "requestBody": {"required": True, "content": {"text/xml": {"schema": {"type": "string"}},
                                                          "application/xml": {"schema": {"type": "string"}}}},
            "responses": {"200": {"description": "Autodiscover XML.", "content": XML}, "400": E400,
                          "413": E413}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text exposition format); no token, only from [api] metrics_from.",
            "security": [],
            "responses": {"200": {"description": "Metrics in the Prometheus text format 0.0.4.",
                                  "content": {"text/plain": {"schema": STR}}},
                          "403": error("The client address is outside [api] metrics_from.")}}},
        "/healthz": {"get": {
            "summary": "Health: 200 when the store answers a read and the listeners are up; no token, only "
                       "from [api] metrics_from.", "security": [],
            "responses": {"200": ok("Healthy.", "Health"),
                          "403": error("The client address is outside [api] metrics_from."),
                          "503": ok("Not healthy; error says why.", "Unhealthy")}}},
        "/openapi.json": {"get": {"summary": "This document.", "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.0 JSON.",
                                                        "content": {JSON: {"schema": {"type": "object"}}}}}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "rmail REST API", "version": "1",
                 "description": "Mail access for rmail users: folders, messages, sending, alias rules. "
                                "Errors are JSON {\"error\": ...} with a 4xx status. OPTIONS on any path "
                                "answers a CORS preflight with 204."},
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


@lru_cache(maxsize=1)
def _encoded() -> bytes:
    return json.dumps(document(), indent=1).encode()


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=_encoded(), content_type=JSON)

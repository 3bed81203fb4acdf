"""SMTP on 25, 587 and 465 with smtplib (SPEC Part 1 "Sending mail via SMTP", Part 3 details)."""

from __future__ import annotations

import smtplib
import time

import pytest

from rmail.e2e.clients import auth_mechanisms, message, smtp, smtp_send
from rmail.e2e.target import Backend, Target

SUBMISSION_PORTS = ("submission", "smtps")


@pytest.mark.parametrize("protocol", ["smtp", "submission"])
def test_cleartext_ehlo_offers_starttls_not_auth(target: Target, protocol: str) -> None:
    client = smtp(target, protocol, starttls=False)
    try:
        if target.tls:
            assert client.has_extn("starttls"), client.esmtp_features
            assert not client.has_extn("auth"), "AUTH must not be offered before STARTTLS"
        else:
            assert not client.has_extn("starttls")
            assert {"PLAIN", "LOGIN"} <= auth_mechanisms(client)
        size = int(client.esmtp_features["size"])
        assert size == target.message_size
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["smtp", "submission"])
def test_auth_offered_after_starttls(target: Target, protocol: str) -> None:
    if not target.tls:
        pytest.skip("TLS is not configured on the target")
    client = smtp(target, protocol)
    try:
        assert {"PLAIN", "LOGIN"} <= auth_mechanisms(client)
        assert not client.has_extn("starttls"), "STARTTLS offered twice"
    finally:
        client.close()


def test_smtps_offers_auth_from_the_start(target: Target) -> None:
    if not target.tls:
        assert target.ports.get("smtps") is None
        pytest.skip("TLS is not configured on the target, so 465 does not listen")
    client = smtp(target, "smtps")
    try:
        assert {"PLAIN", "LOGIN"} <= auth_mechanisms(client)
    finally:
        client.close()


def test_no_tls_server_offers_auth_in_clear(plain_target: Target) -> None:
    for protocol in ("smtp", "submission"):
        client = smtp(plain_target, protocol)
        try:
            assert {"PLAIN", "LOGIN"} <= auth_mechanisms(client)
            assert not client.has_extn("starttls")
            client.login(plain_target.alice.address, plain_target.alice.password)
        finally:
            client.close()
    assert plain_target.ports.get("smtps") is None and plain_target.ports.get("imaps") is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms_log_in(target: Target, mechanism: str) -> None:
    client = smtp(target, "submission")
    try:
        client.user, client.password = target.alice.address, target.alice.password
        authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
        assert code == 235
    finally:
        client.close()


def test_wrong_password_is_refused(target: Target) -> None:
    client = smtp(target, "submission")
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            client.login(target.alice.address, target.alice.password + "-wrong")
        assert err.value.smtp_code == 535
    finally:
        client.close()


def test_submission_requires_auth(target: Target) -> None:
    client = smtp(target, "submission")
    try:
        code, _ = client.mail(target.alice.address)
        assert code == 530
    finally:
        client.close()


def test_relay_refused_without_auth_on_25(target: Target) -> None:
    client = smtp(target, "smtp")
    try:
        assert client.mail("someone@example.net")[0] == 250
        code, reply = client.rcpt("victim@relay-test.example.org")
        assert 500 <= code < 600, f"open relay: RCPT to a remote domain got {code} {reply!r}"
    finally:
        client.close()


def test_unknown_local_user_is_refused(target: Target) -> None:
    client = smtp(target, "smtp")
    try:
        client.mail("someone@example.net")
        code, _ = client.rcpt(f"nobody-{target.unique()}@{target.domain}")
        assert code == 550
    finally:
        client.close()


def test_inbound_delivery_on_25(target: Target, backend: Backend) -> None:
    subject = target.unique("inbound")
    data = message("someone@example.net", target.alice.address, subject)
    smtp_send(target, "smtp", "someone@example.net", [target.alice.address], data)
    found = backend.wait_for_message(target.alice.address, subject)
    assert len(found) == 1
    assert found[0][1].endswith(data), "stored bytes must be the message as sent (after trace headers)"


@pytest.mark.parametrize("protocol", SUBMISSION_PORTS)
def test_authenticated_submission_delivers(target: Target, backend: Backend, protocol: str) -> None:
    if protocol == "smtps" and not target.tls:
        pytest.skip("TLS is not configured on the target, so 465 does not listen")
    subject = target.unique(protocol)
    data = message(target.alice.address, target.bob.address, subject)
    smtp_send(target, protocol, target.alice.address, [target.bob.address], data, login=target.alice)
    assert len(backend.wait_for_message(target.bob.address, subject)) == 1


def test_submission_refuses_someone_elses_sender(target: Target) -> None:
    client = smtp(target, "submission")
    try:
        client.login(target.alice.address, target.alice.password)
        code, _ = client.mail(target.bob.address)
        assert 500 <= code < 600
    finally:
        client.close()


def test_oversized_mail_is_refused_with_552(target: Target) -> None:
    client = smtp(target, "smtp")
    try:
        code, _ = client.mail("someone@example.net", [f"SIZE={target.message_size + 1}"])
        assert code == 552
    finally:
        client.close()


def test_alias_routes_to_its_target(target: Target, backend: Backend) -> None:
    pattern = f"sales-{target.unique('x').split('-')[1]}-.*"
    backend.call(lambda ctx: ctx.aliases.add(target.domain, pattern, target.alice.local))
    try:
        subject = target.unique("alias")
        rcpt = pattern.replace(".*", "emea") + "@" + target.domain
        smtp_send(target, "smtp", "someone@example.net", [rcpt], message("someone@example.net", rcpt, subject))
        assert len(backend.wait_for_message(target.alice.address, subject)) == 1
    finally:
        backend.call(lambda ctx: ctx.aliases.remove(target.domain, pattern))
    # Once the rule is gone the address is unknown again, without a restart. Against a running
    # server the change comes from another process, which the server notices within a second.
    deadline = time.monotonic() + 5
    while True:
        client = smtp(target, "smtp")
        try:
            client.mail("someone@example.net")
            code = client.rcpt(rcpt)[0]
        finally:
            client.close()
        if code == 550 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code == 550

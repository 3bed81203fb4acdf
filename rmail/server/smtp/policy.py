"""Per-port rules: what each SMTP listener accepts, and from whom (SPEC Part 1 and Part 3).

=========  ==========  ===============  ==================================================
port       TLS         AUTH             mail accepted
=========  ==========  ===============  ==================================================
25         STARTTLS    after STARTTLS   local recipients; remote ones only after AUTH
587        STARTTLS    required          any recipient; MAIL FROM owned by the user
465        implicit    required          any recipient; MAIL FROM owned by the user
=========  ==========  ===============  ==================================================

Without TLS configured there is no STARTTLS and AUTH is offered in clear (SPEC: "On
connections without TLS configuration, AUTH is always advertised"). Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Policy:
    protocol: str                  #: listener name: "smtp", "submission" or "smtps"
    auth_required: bool            #: AUTH before MAIL (530 5.7.0 otherwise)
    implicit_tls: bool             #: TLS from the first byte (port 465)

    @property
    def submission(self) -> bool:
        """Submission ports check that the sender owns MAIL FROM (RFC 6409 §6.1)."""
        return self.auth_required


INBOUND = Policy("smtp", auth_required=False, implicit_tls=False)
SUBMISSION = Policy("submission", auth_required=True, implicit_tls=False)
SMTPS = Policy("smtps", auth_required=True, implicit_tls=True)

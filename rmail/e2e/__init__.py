"""End-to-end plumbing shared by ``python run.py test`` (tests/e2e) and ``python run.py diagnose``.

Modules, each with one job:

- ``target`` — what a check talks to: host, bound ports, TLS trust, test users (``Target``),
  and ``Backend``, the store behind it (a throwaway ``ServerRuntime`` in a thread, or the data
  dir of a running server opened like the admin CLI does).
- ``clients`` — independent stdlib clients (smtplib, imaplib, http.client, ssl) so checks speak
  the protocols exactly as SPEC.md fixes them, never through rmail's own server code.

Invariants:

- Checks never import a protocol adapter; they see rmail only through sockets and the store.
- Everything a check creates (users, domains, aliases) is removed by the code that created it,
  in a ``finally``.
"""

"""rmail's terminal mail client: ``python -m rmail.client``.

An independent IMAP4rev1 + SMTP submission client, deliberately sharing no code with
``rmail.server`` so that it doubles as an interoperability check of the server.

Invariants:
- Nothing here imports ``rmail.server``.
- All network I/O is blocking stdlib code (imaplib/smtplib) behind the ``MailBackend`` Protocol,
  and the Textual app calls it only from thread workers; the UI loop never waits on a socket.
- Pure modules (``imapwire``, ``mime``, ``compose``, ``threads``, ``html2text``, ``search``) do no
  I/O and are tested as tables.
- Text that came from the network is rendered as ``rich.text.Text``, never as markup.
- Passwords are never written to disk; a server certificate is trusted by SHA-256 fingerprint.
"""

from __future__ import annotations

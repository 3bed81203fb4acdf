"""Byte-exact transcripts of one session through every command rmail's IMAP server knows.

Each step sends bytes and expects exactly the bytes that follow, so any change on the wire
(a quote turned literal, a space, the order of responses, an extra line) fails here: the
responses of every command and its refusals, the FETCH items of stored metadata (ENVELOPE,
BODY, BODYSTRUCTURE computed at delivery), the selected-state updates, and the same for a
message large enough to be streamed from its file.
"""

from __future__ import annotations

import asyncio

from rmail.server.core.sqlite.mail import INLINE_BLOB_MAX
from rmail.server.imap.objectid import mailbox_id
from rmail.server.runtime import ServerRuntime

from . import caps
from .conftest import RawClient

# Quotes and backslashes in quoted strings, a folded subject (TAB), parameters, a disposition,
# languages, a nested message.
MIXED = (b"From: \"Bob \\\"B\\\" Smith\" <bob@example.com>\r\n"
         b"To: alice@example.com, \"Carol\" <carol@example.org>\r\n"
         b"Cc: undisclosed-recipients:;\r\n"
         b"Subject: Quarterly\r\n\treport \"final\" \\ draft\r\n"
         b"Date: Tue, 05 Mar 2024 09:08:07 +0100\r\n"
         b"Message-ID: <mixed@example.com>\r\n"
         b"In-Reply-To: <earlier@example.com>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
         b"\r\n"
         b"preamble\r\n"
         b"--XYZ\r\n"
         b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n"
         b"Content-Language: en, de\r\n"
         b"\r\n"
         b"Caf=C3=A9 numbers attached.\r\n"
         b"--XYZ\r\n"
         b"Content-Type: application/pdf; name=\"q1.pdf\"\r\n"
         b"Content-Disposition: attachment; filename=\"q1 \\\"v2\\\".pdf\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-ID: <pdf1@example.com>\r\n"
         b"Content-Description: the\tnumbers\r\n"
         b"\r\n"
         b"JVBERi0xLjQK\r\n"
         b"--XYZ\r\n"
         b"Content-Type: message/rfc822\r\n"
         b"\r\n"
         b"From: Dave <dave@example.net>\r\n"
         b"Subject: =?utf-8?q?inner_caf=C3=A9?=\r\n"
         b"\r\n"
         b"inner body\r\n"
         b"--XYZ--\r\n")
# 8-bit and control characters in a header: a literal in ENVELOPE.
PLAIN = (b"From: Eve <eve@example.com>\r\nTo: alice@example.com\r\n"
         b"Subject: Hello \xc3\xa9t\xc3\xa9 \x01ctl\r\n"
         b"Date: Wed, 06 Mar 2024 10:00:00 +0000\r\n\r\nline one\r\nline two\r\n")
# A header value over the longest quoted string: a literal.
LONG_SUBJECT = (b"Subject: " + b"x" * 1100 + b"\r\nFrom: nobody\r\n\r\nshort\r\n")
NOHEADER = b"\r\njust a body\r\n"

#: (bytes sent, bytes expected); "{INBOX}", "{Archive}" and "{Trash}" stand for the
#: mailboxes' UIDVALIDITY, "{X1100}" for 1100 "x"s.
STEPS: list[tuple[bytes, bytes]] = [
    (b'',
     b'* OK [CAPABILITY ' + caps.BEFORE_LOGIN + b'] rmail IMAP4rev1 ready\r\n'),
    (b'c1 CAPABILITY\r\n',
     b'* CAPABILITY ' + caps.BEFORE_LOGIN + b'\r\n'
     b'c1 OK CAPABILITY completed\r\n'),
    (b'c2 NOOP\r\n',
     b'c2 OK NOOP completed\r\n'),
    (b'c3 ID ("name" "test" "version" NIL)\r\n',
     b'* ID ("name" "rmail" "vendor" "rmail")\r\n'
     b'c3 OK ID completed\r\n'),
    (b'c4 ID NIL\r\n',
     b'* ID ("name" "rmail" "vendor" "rmail")\r\n'
     b'c4 OK ID completed\r\n'),
    (b'c5 SELECT INBOX\r\n',
     b'c5 BAD SELECT not allowed in the not authenticated state\r\n'),
    (b'c6 STARTTLS\r\n',
     b'c6 NO TLS is not configured on this server\r\n'),
    (b'c7 LOGIN alice@example.com wrong\r\n',
     b'c7 NO [AUTHENTICATIONFAILED] invalid credentials\r\n'),
    (b'c8 LOGIN alice@example.com secret-password\r\n',
     b'c8 OK [CAPABILITY ' + caps.AFTER_LOGIN + b'] logged in\r\n'),
    (b'c9 CAPABILITY\r\n',
     b'* CAPABILITY ' + caps.AFTER_LOGIN + b'\r\n'
     b'c9 OK CAPABILITY completed\r\n'),
    (b'd1 LOGIN alice@example.com x\r\n',
     b'd1 BAD LOGIN not allowed in the authenticated state\r\n'),
    (b'd2 NAMESPACE\r\n',
     b'* NAMESPACE (("" "/")) NIL NIL\r\n'
     b'd2 OK NAMESPACE completed\r\n'),
    (b'd3 ENABLE X-UNKNOWN X-OTHER\r\n',
     b'* ENABLED\r\n'
     b'd3 OK ENABLE completed\r\n'),
    (b'd4 LIST "" *\r\n',
     b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
     b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
     b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
     b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
     b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
     b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
     b'd4 OK LIST completed\r\n'),
    (b'd5 LIST "" ""\r\n',
     b'* LIST (\\Noselect) "/" ""\r\n'
     b'd5 OK LIST completed\r\n'),
    (b'd6 LIST "" %\r\n',
     b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
     b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
     b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
     b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
     b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
     b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
     b'd6 OK LIST completed\r\n'),
    (b'd7 CREATE Work/Projects/&AOk-t&AOk-\r\n',
     b'd7 OK [MAILBOXID ({ID Work/Projects/\xc3\xa9t\xc3\xa9})] CREATE completed\r\n'),
    (b'd8 CREATE inbox\r\n',
     b'd8 NO [ALREADYEXISTS] INBOX always exists\r\n'),
    (b'd9 CREATE Work\r\n',
     b'd9 NO [ALREADYEXISTS] mailbox Work already exists\r\n'),
    (b'e1 CREATE Lists/\r\n',
     b'e1 OK [MAILBOXID ({ID Lists})] CREATE completed\r\n'),
    (b'e2 LIST Work/ *\r\n',
     b'* LIST (\\HasChildren) "/" "Work/Projects"\r\n'
     b'* LIST (\\HasNoChildren) "/" "Work/Projects/&AOk-t&AOk-"\r\n'
     b'e2 OK LIST completed\r\n'),
    (b'e3 LIST "" inbox*\r\n',
     b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
     b'e3 OK LIST completed\r\n'),
    # CREATE does not subscribe (RFC 3501 §6.3.6, as Dovecot): only the defaults are.
    (b'e4 LSUB "" *\r\n',
     b'* LSUB () "/" "INBOX"\r\n'
     b'* LSUB (\\Archive) "/" "Archive"\r\n'
     b'* LSUB (\\Drafts) "/" "Drafts"\r\n'
     b'* LSUB (\\Junk) "/" "Junk"\r\n'
     b'* LSUB (\\Sent) "/" "Sent"\r\n'
     b'* LSUB (\\Trash) "/" "Trash"\r\n'
     b'e4 OK LSUB completed\r\n'),
    (b'e5 SUBSCRIBE Work/Projects\r\n',
     b'e5 OK SUBSCRIBE completed\r\n'),
    (b'e6 LSUB "" %\r\n',
     b'* LSUB () "/" "INBOX"\r\n'
     b'* LSUB (\\Archive) "/" "Archive"\r\n'
     b'* LSUB (\\Drafts) "/" "Drafts"\r\n'
     b'* LSUB (\\Junk) "/" "Junk"\r\n'
     b'* LSUB (\\Sent) "/" "Sent"\r\n'
     b'* LSUB (\\Trash) "/" "Trash"\r\n'
     b'* LSUB (\\Noselect) "/" "Work"\r\n'
     b'e6 OK LSUB completed\r\n'),
    # A subscription is a name: it needs no mailbox.
    (b'e7 SUBSCRIBE Nope\r\n',
     b'e7 OK SUBSCRIBE completed\r\n'),
    (b'e8 SUBSCRIBE Work\r\n',
     b'e8 OK SUBSCRIBE completed\r\n'),
    (b'e9 RENAME Work Play\r\n',
     b'e9 OK RENAME completed\r\n'),
    (b'f1 LIST "" Play*\r\n',
     b'* LIST (\\HasChildren) "/" "Play"\r\n'
     b'* LIST (\\HasChildren) "/" "Play/Projects"\r\n'
     b'* LIST (\\HasNoChildren) "/" "Play/Projects/&AOk-t&AOk-"\r\n'
     b'f1 OK LIST completed\r\n'),
    (b'f2 DELETE Play\r\n',
     b'f2 OK DELETE completed\r\n'),
    (b'f3 LIST "" *\r\n',
     b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
     b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
     b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
     b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
     b'* LIST (\\HasNoChildren) "/" "Lists"\r\n'
     b'* LIST (\\Noselect \\HasChildren) "/" "Play"\r\n'
     b'* LIST (\\HasChildren) "/" "Play/Projects"\r\n'
     b'* LIST (\\HasNoChildren) "/" "Play/Projects/&AOk-t&AOk-"\r\n'
     b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
     b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
     b'f3 OK LIST completed\r\n'),
    # RENAME and DELETE leave the subscription list alone (RFC 9051 §6.3.6, RFC 3501 §6.3.6).
    (b'f4 LSUB "" *\r\n',
     b'* LSUB () "/" "INBOX"\r\n'
     b'* LSUB (\\Archive) "/" "Archive"\r\n'
     b'* LSUB (\\Drafts) "/" "Drafts"\r\n'
     b'* LSUB (\\Junk) "/" "Junk"\r\n'
     b'* LSUB () "/" "Nope"\r\n'
     b'* LSUB (\\Sent) "/" "Sent"\r\n'
     b'* LSUB (\\Trash) "/" "Trash"\r\n'
     b'* LSUB () "/" "Work"\r\n'
     b'* LSUB () "/" "Work/Projects"\r\n'
     b'f4 OK LSUB completed\r\n'),
    (b'f4a UNSUBSCRIBE Nope\r\n',
     b'f4a OK UNSUBSCRIBE completed\r\n'),
    (b'f4b UNSUBSCRIBE Nope\r\n',
     b'f4b OK UNSUBSCRIBE completed\r\n'),
    (b'f5 DELETE Nope\r\n',
     b'f5 NO [NONEXISTENT] no mailbox named Nope\r\n'),
    (b'f6 RENAME Nope Other\r\n',
     b'f6 NO [NONEXISTENT] no mailbox named Nope\r\n'),
    (b'f7 LIST "" "&Jjo"\r\n',
     b'f7 OK LIST completed\r\n'),
    (b'f8 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)\r\n',
     b'* STATUS "INBOX" (MESSAGES 0 RECENT 0 UIDNEXT 1 UIDVALIDITY {INBOX} UNSEEN 0)\r\n'
     b'f8 OK STATUS completed\r\n'),
    (b'f9 STATUS Nope (MESSAGES)\r\n',
     b'f9 NO [NONEXISTENT] no mailbox named Nope\r\n'),
    (b'g1 STATUS INBOX (FROB)\r\n',
     b'g1 BAD unknown STATUS item FROB\r\n'),
    (b"g2 APPEND INBOX (\\Flagged $Label) \"05-Mar-2024 09:08:07 +0100\" {%d+}\r\n" % len(MIXED) + MIXED + b"\r\n",
     b'g2 OK [APPENDUID {INBOX} 1] APPEND completed\r\n'),
    (b"g3 APPEND INBOX \" 6-Mar-2024 10:00:00 +0000\" {%d}\r\n" % len(PLAIN),
     b'+ Ready for literal data\r\n'),
    (PLAIN + b"\r\n",
     b'g3 OK [APPENDUID {INBOX} 2] APPEND completed\r\n'),
    (b"g4 APPEND INBOX () \"07-Mar-2024 11:00:00 -0500\" {%d+}\r\n" % len(LONG_SUBJECT) + LONG_SUBJECT + b"\r\n",
     b'g4 OK [APPENDUID {INBOX} 3] APPEND completed\r\n'),
    (b"g5 APPEND INBOX \"08-Mar-2024 12:00:00 +0000\" {%d+}\r\n" % len(NOHEADER) + NOHEADER + b"\r\n",
     b'g5 OK [APPENDUID {INBOX} 4] APPEND completed\r\n'),
    (b'g6 APPEND Nope {1+}\r\nx\r\n',
     b'g6 NO [TRYCREATE] no such mailbox\r\n'),
    (b'g7 APPEND INBOX (\\Recent) {1+}\r\nx\r\n',
     b'g7 BAD invalid system flag\r\n'),
    (b'g8 FETCH 1 FLAGS\r\n',
     b'g8 BAD FETCH not allowed in the authenticated state\r\n'),
    (b'g9 CLOSE\r\n',
     b'g9 BAD CLOSE not allowed in the authenticated state\r\n'),
    (b'h1 SELECT INBOX\r\n',
     b'* 4 EXISTS\r\n'
     b'* 4 RECENT\r\n'
     b'* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label)\r\n'
     b'* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label \\*)] flags permitted\r\n'
     b'* OK [UNSEEN 1] first unseen\r\n'
     b'* OK [UIDVALIDITY {INBOX}] UIDs valid\r\n'
     b'* OK [UIDNEXT 5] predicted next UID\r\n'
     b'* OK [MAILBOXID ({ID INBOX})] mailbox id\r\n'
     b'h1 OK [READ-WRITE] SELECT completed\r\n'),
    (b'h2 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)\r\n',
     b'* 1 FETCH (UID 1 FLAGS (\\Flagged $Label \\Recent) INTERNALDATE "05-Mar-2024 08:08:07 +0000" RFC822.SIZE 881)\r\n'
     b'* 2 FETCH (UID 2 FLAGS (\\Recent) INTERNALDATE "06-Mar-2024 10:00:00 +0000" RFC822.SIZE 140)\r\n'
     b'* 3 FETCH (UID 3 FLAGS (\\Recent) INTERNALDATE "07-Mar-2024 16:00:00 +0000" RFC822.SIZE 1134)\r\n'
     b'* 4 FETCH (UID 4 FLAGS (\\Recent) INTERNALDATE "08-Mar-2024 12:00:00 +0000" RFC822.SIZE 15)\r\n'
     b'h2 OK FETCH completed\r\n'),
    (b'h3 FETCH 1 ALL\r\n',
     b'* 1 FETCH (FLAGS (\\Flagged $Label \\Recent) INTERNALDATE "05-Mar-2024 08:08:07 +0000" RFC822.SIZE 881 ENVELOPE ("Tue, 05 Mar 2024 09:08:07 +0100" "Quarterly\treport \\"final\\" \\\\ draft" (("Bob \\"B\\" Smith" NIL "bob" "example.com")) (("Bob \\"B\\" Smith" NIL "bob" "example.com")) (("Bob \\"B\\" Smith" NIL "bob" "example.com")) ((NIL NIL "alice" "example.com") ("Carol" NIL "carol" "example.org")) ((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL)) NIL "<earlier@example.com>" "<mixed@example.com>"))\r\n'
     b'h3 OK FETCH completed\r\n'),
    (b'h4 FETCH 2 FAST\r\n',
     b'* 2 FETCH (FLAGS (\\Recent) INTERNALDATE "06-Mar-2024 10:00:00 +0000" RFC822.SIZE 140)\r\n'
     b'h4 OK FETCH completed\r\n'),
    (b'h5 FETCH 1 FULL\r\n',
     b'* 1 FETCH (FLAGS (\\Flagged $Label \\Recent) INTERNALDATE "05-Mar-2024 08:08:07 +0000" RFC822.SIZE 881 ENVELOPE ("Tue, 05 Mar 2024 09:08:07 +0100" "Quarterly\treport \\"final\\" \\\\ draft" (("Bob \\"B\\" Smith" NIL "bob" "example.com")) (("Bob \\"B\\" Smith" NIL "bob" "example.com")) (("Bob \\"B\\" Smith" NIL "bob" "example.com")) ((NIL NIL "alice" "example.com") ("Carol" NIL "carol" "example.org")) ((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL)) NIL "<earlier@example.com>" "<mixed@example.com>") BODY (("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" 27 0)("application" "pdf" ("name" "q1.pdf") "<pdf1@example.com>" "the\tnumbers" "base64" 12)("message" "rfc822" NIL NIL NIL "7bit" 81 (NIL "=?utf-8?q?inner_caf=C3=A9?=" (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3) "mixed"))\r\n'
     b'h5 OK FETCH completed\r\n'),
    (b'h6 FETCH 1:4 (ENVELOPE BODYSTRUCTURE BODY)\r\n',
     b'* 1 FETCH (ENVELOPE ("Tue, 05 Mar 2024 09:08:07 +0100" "Quarterly\treport \\"final\\" \\\\ draft" (("Bob \\"B\\" Smith" NIL "bob" "example.com")) (("Bob \\"B\\" Smith" NIL "bob" "example.com")) (("Bob \\"B\\" Smith" NIL "bob" "example.com")) ((NIL NIL "alice" "example.com") ("Carol" NIL "carol" "example.org")) ((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL)) NIL "<earlier@example.com>" "<mixed@example.com>") BODYSTRUCTURE (("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" 27 0 NIL NIL ("en" "de") NIL)("application" "pdf" ("name" "q1.pdf") "<pdf1@example.com>" "the\tnumbers" "base64" 12 NIL ("attachment" ("filename" "q1 \\"v2\\".pdf")) NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 81 (NIL "=?utf-8?q?inner_caf=C3=A9?=" (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) "mixed" ("boundary" "XYZ") NIL NIL NIL) BODY (("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" 27 0)("application" "pdf" ("name" "q1.pdf") "<pdf1@example.com>" "the\tnumbers" "base64" 12)("message" "rfc822" NIL NIL NIL "7bit" 81 (NIL "=?utf-8?q?inner_caf=C3=A9?=" (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3) "mixed"))\r\n'
     b'* 2 FETCH (ENVELOPE ("Wed, 06 Mar 2024 10:00:00 +0000" {16}\r\n'
     b'Hello \xc3\xa9t\xc3\xa9 \x01ctl (("Eve" NIL "eve" "example.com")) (("Eve" NIL "eve" "example.com")) (("Eve" NIL "eve" "example.com")) ((NIL NIL "alice" "example.com")) NIL NIL NIL NIL) BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL) BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2))\r\n'
     b'* 3 FETCH (ENVELOPE (NIL {1100}\r\n'
     b'{X1100} ((NIL NIL "nobody" "")) ((NIL NIL "nobody" "")) ((NIL NIL "nobody" "")) NIL NIL NIL NIL NIL) BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL) BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1))\r\n'
     b'* 4 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1 NIL NIL NIL NIL) BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1))\r\n'
     b'h6 OK FETCH completed\r\n'),
    (b'h7 FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (Subject FROM)] BODY.PEEK[HEADER.FIELDS.NOT (Subject Received)] BODY.PEEK[TEXT]<0.10>)\r\n',
     b'* 1 FETCH (BODY[HEADER] {346}\r\n'
     b'From: "Bob \\"B\\" Smith" <bob@example.com>\r\n'
     b'To: alice@example.com, "Carol" <carol@example.org>\r\n'
     b'Cc: undisclosed-recipients:;\r\n'
     b'Subject: Quarterly\r\n'
     b'\treport "final" \\ draft\r\n'
     b'Date: Tue, 05 Mar 2024 09:08:07 +0100\r\n'
     b'Message-ID: <mixed@example.com>\r\n'
     b'In-Reply-To: <earlier@example.com>\r\n'
     b'MIME-Version: 1.0\r\n'
     b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
     b'\r\n'
     b' BODY[HEADER.FIELDS (Subject FROM)] {90}\r\n'
     b'From: "Bob \\"B\\" Smith" <bob@example.com>\r\n'
     b'Subject: Quarterly\r\n'
     b'\treport "final" \\ draft\r\n'
     b'\r\n'
     b' BODY[HEADER.FIELDS.NOT (Subject Received)] {301}\r\n'
     b'From: "Bob \\"B\\" Smith" <bob@example.com>\r\n'
     b'To: alice@example.com, "Carol" <carol@example.org>\r\n'
     b'Cc: undisclosed-recipients:;\r\n'
     b'Date: Tue, 05 Mar 2024 09:08:07 +0100\r\n'
     b'Message-ID: <mixed@example.com>\r\n'
     b'In-Reply-To: <earlier@example.com>\r\n'
     b'MIME-Version: 1.0\r\n'
     b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
     b'\r\n'
     b' BODY[TEXT]<0> {10}\r\n'
     b'preamble\r\n'
     b')\r\n'
     b'h7 OK FETCH completed\r\n'),
    (b'h8 FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2]<4.100> BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] BODY.PEEK[7])\r\n',
     b'* 1 FETCH (BODY[1] {27}\r\n'
     b'Caf=C3=A9 numbers attached. BODY[1.MIME] {129}\r\n'
     b'Content-Type: text/plain; charset=utf-8; format=flowed\r\n'
     b'Content-Transfer-Encoding: quoted-printable\r\n'
     b'Content-Language: en, de\r\n'
     b'\r\n'
     b' BODY[2]<4> {8}\r\n'
     b'Ri0xLjQK BODY[3.HEADER] {71}\r\n'
     b'From: Dave <dave@example.net>\r\n'
     b'Subject: =?utf-8?q?inner_caf=C3=A9?=\r\n'
     b'\r\n'
     b' BODY[3.TEXT] {10}\r\n'
     b'inner body BODY[7] {0}\r\n'
     b')\r\n'
     b'h8 OK FETCH completed\r\n'),
    (b'h9 FETCH 2 (RFC822.HEADER RFC822.SIZE)\r\n',
     b'* 2 FETCH (RFC822.HEADER {120}\r\n'
     b'From: Eve <eve@example.com>\r\n'
     b'To: alice@example.com\r\n'
     b'Subject: Hello \xc3\xa9t\xc3\xa9 \x01ctl\r\n'
     b'Date: Wed, 06 Mar 2024 10:00:00 +0000\r\n'
     b'\r\n'
     b' RFC822.SIZE 140)\r\n'
     b'h9 OK FETCH completed\r\n'),
    (b'i1 FETCH 2 RFC822.TEXT\r\n',
     b'* 2 FETCH (RFC822.TEXT {20}\r\n'
     b'line one\r\n'
     b'line two\r\n'
     b' FLAGS (\\Seen \\Recent))\r\n'
     b'i1 OK FETCH completed\r\n'),
    (b'i2 FETCH 3 (RFC822)\r\n',
     b'* 3 FETCH (RFC822 {1134}\r\n'
     b'Subject: {X1100}\r\n'
     b'From: nobody\r\n'
     b'\r\n'
     b'short\r\n'
     b' FLAGS (\\Seen \\Recent))\r\n'
     b'i2 OK FETCH completed\r\n'),
    (b'i3 UID FETCH 2:* (FLAGS)\r\n',
     b'* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))\r\n'
     b'* 3 FETCH (UID 3 FLAGS (\\Seen \\Recent))\r\n'
     b'* 4 FETCH (UID 4 FLAGS (\\Recent))\r\n'
     b'i3 OK FETCH completed\r\n'),
    (b'i4 FETCH 9 FLAGS\r\n',
     b'i4 BAD message sequence number out of range\r\n'),
    (b'i5 FETCH 1 (BODY[]<2.5>)\r\n',
     b'* 1 FETCH (BODY[]<2> {5}\r\n'
     b'om: " FLAGS (\\Seen \\Flagged $Label \\Recent))\r\n'
     b'i5 OK FETCH completed\r\n'),
    (b'i6 FETCH 4 (BODY[] BODY[HEADER] BODY[TEXT])\r\n',
     b'* 4 FETCH (BODY[] {15}\r\n'
     b'\r\n'
     b'just a body\r\n'
     b' BODY[HEADER] {2}\r\n'
     b'\r\n'
     b' BODY[TEXT] {13}\r\n'
     b'just a body\r\n'
     b' FLAGS (\\Seen \\Recent))\r\n'
     b'i6 OK FETCH completed\r\n'),
    (b'i7 FETCH 1 (FROB)\r\n',
     b'i7 BAD unknown FETCH item FROB\r\n'),
    (b'i8 UID FETCH 100:* UID\r\n',
     b'* 4 FETCH (UID 4)\r\n'
     b'i8 OK FETCH completed\r\n'),
    (b'i9 UID FETCH 1,3 (INTERNALDATE)\r\n',
     b'* 1 FETCH (UID 1 INTERNALDATE "05-Mar-2024 08:08:07 +0000")\r\n'
     b'* 3 FETCH (UID 3 INTERNALDATE "07-Mar-2024 16:00:00 +0000")\r\n'
     b'i9 OK FETCH completed\r\n'),
    (b'j1 STORE 1 +FLAGS (\\Deleted)\r\n',
     b'* 1 FETCH (FLAGS (\\Seen \\Flagged \\Deleted $Label \\Recent))\r\n'
     b'j1 OK STORE completed\r\n'),
    (b'j2 STORE 1 -FLAGS.SILENT (\\Deleted)\r\n',
     b'j2 OK STORE completed\r\n'),
    (b'j3 UID STORE 2 FLAGS ($Work \\Answered)\r\n',
     b'* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label $Work)\r\n'
     b'* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label $Work \\*)] flags permitted\r\n'
     b'* 2 FETCH (UID 2 FLAGS (\\Answered $Work \\Recent))\r\n'
     b'j3 OK STORE completed\r\n'),
    (b'j4 STORE 1:3 FLAGS.SILENT (\\Seen)\r\n',
     b'j4 OK STORE completed\r\n'),
    (b'j5 STORE 1 +FLAGS (\\Recent)\r\n',
     b'j5 BAD invalid system flag\r\n'),
    (b'j6 STORE 2 +FLAGS \\Draft $Other\r\n',
     b'* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label $Other $Work)\r\n'
     b'* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label $Other $Work \\*)] flags permitted\r\n'
     b'* 2 FETCH (FLAGS (\\Seen \\Draft $Other \\Recent))\r\n'
     b'j6 OK STORE completed\r\n'),
    (b'j7 STORE 1 -FLAGS (\\Seen)\r\n',
     b'* 1 FETCH (FLAGS (\\Recent))\r\n'
     b'j7 OK STORE completed\r\n'),
    (b'k1 SEARCH ALL\r\n',
     b'* SEARCH 1 2 3 4\r\n'
     b'k1 OK SEARCH completed\r\n'),
    (b'k2 UID SEARCH FLAGGED\r\n',
     b'* SEARCH\r\n'
     b'k2 OK SEARCH completed\r\n'),
    (b'k3 SEARCH CHARSET UTF-8 SUBJECT quarterly\r\n',
     b'* SEARCH 1\r\n'
     b'k3 OK SEARCH completed\r\n'),
    (b'k4 SEARCH CHARSET KOI8-R ALL\r\n',
     b'k4 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n'),
    (b'k5 SEARCH NOT ALL\r\n',
     b'* SEARCH\r\n'
     b'k5 OK SEARCH completed\r\n'),
    (b'k6 SEARCH BOGUS\r\n',
     b'k6 BAD expected SP\r\n'),
    (b'k7 SEARCH OR KEYWORD $Work (UNSEEN LARGER 10) SINCE 1-Jan-2000 UID 1:*\r\n',
     b'* SEARCH 1\r\n'
     b'k7 OK SEARCH completed\r\n'),
    (b'k8 UID SEARCH TEXT zebra\r\n',
     b'* SEARCH\r\n'
     b'k8 OK SEARCH completed\r\n'),
    (b'k9 SEARCH 2:* BODY "line"\r\n',
     b'* SEARCH 2\r\n'
     b'k9 OK SEARCH completed\r\n'),
    (b'l1 COPY 1:2 Archive\r\n',
     b'l1 OK [COPYUID {Archive} 1:2 1:2] COPY completed\r\n'),
    (b'l2 COPY 1 Nope\r\n',
     b'l2 NO [TRYCREATE] no such mailbox\r\n'),
    (b'l3 UID COPY 99 Archive\r\n',
     b'l3 OK COPY completed\r\n'),
    (b'l4 UID COPY 1,3:4 Archive\r\n',
     b'l4 OK [COPYUID {Archive} 1,3:4 3:5] COPY completed\r\n'),
    (b'l5 MOVE 3 Trash\r\n',
     b'* OK [COPYUID {Trash} 3 1] moved\r\n'
     b'* 3 EXPUNGE\r\n'
     b'l5 OK MOVE completed\r\n'),
    (b'l6 UID MOVE 99 Trash\r\n',
     b'l6 OK MOVE completed\r\n'),
    (b'l7 MOVE 1 Nope\r\n',
     b'l7 NO [TRYCREATE] no such mailbox\r\n'),
    (b'm1 STORE 2 +FLAGS.SILENT (\\Deleted)\r\n',
     b'm1 OK STORE completed\r\n'),
    (b'm2 UID EXPUNGE 1\r\n',
     b'm2 OK EXPUNGE completed\r\n'),
    (b'm3 UID EXPUNGE 50:60\r\n',
     b'm3 OK EXPUNGE completed\r\n'),
    (b'm4 EXPUNGE\r\n',
     b'* 2 EXPUNGE\r\n'
     b'm4 OK EXPUNGE completed\r\n'),
    (b'm5 CHECK\r\n',
     b'm5 OK CHECK completed\r\n'),
    (b'm6 FETCH 1:* (UID FLAGS)\r\n',
     b'* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n'
     b'* 2 FETCH (UID 4 FLAGS (\\Seen \\Recent))\r\n'
     b'm6 OK FETCH completed\r\n'),
    (b'm7 STORE 1:* +FLAGS.SILENT (\\Deleted)\r\n',
     b'm7 OK STORE completed\r\n'),
    (b'm8 CLOSE\r\n',
     b'm8 OK CLOSE completed\r\n'),
    (b'm9 UNSELECT\r\n',
     b'm9 BAD UNSELECT not allowed in the authenticated state\r\n'),
    (b'n1 EXAMINE Archive\r\n',
     b'* 5 EXISTS\r\n'
     b'* 5 RECENT\r\n'
     b'* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Other)\r\n'
     b'* OK [PERMANENTFLAGS ()] flags permitted\r\n'
     b'* OK [UNSEEN 1] first unseen\r\n'
     b'* OK [UIDVALIDITY {Archive}] UIDs valid\r\n'
     b'* OK [UIDNEXT 6] predicted next UID\r\n'
     b'* OK [MAILBOXID ({ID Archive})] mailbox id\r\n'
     b'n1 OK [READ-ONLY] EXAMINE completed\r\n'),
    (b'n2 STORE 1 +FLAGS (\\Seen)\r\n',
     b'n2 NO [READ-ONLY] mailbox is read-only\r\n'),
    (b'n3 FETCH 1:* (FLAGS BODY[TEXT]<0.4>)\r\n',
     b'* 1 FETCH (FLAGS (\\Recent) BODY[TEXT]<0> {4}\r\n'
     b'prea)\r\n'
     b'* 2 FETCH (FLAGS (\\Seen \\Draft $Other \\Recent) BODY[TEXT]<0> {4}\r\n'
     b'line)\r\n'
     b'* 3 FETCH (FLAGS (\\Recent) BODY[TEXT]<0> {4}\r\n'
     b'prea)\r\n'
     b'* 4 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT]<0> {4}\r\n'
     b'shor)\r\n'
     b'* 5 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT]<0> {4}\r\n'
     b'just)\r\n'
     b'n3 OK FETCH completed\r\n'),
    (b'n4 COPY 1 INBOX\r\n',
     b'n4 OK [COPYUID {INBOX} 1 5] COPY completed\r\n'),
    (b'n5 MOVE 1 INBOX\r\n',
     b'n5 NO [READ-ONLY] mailbox is read-only\r\n'),
    (b'n6 SELECT Nope\r\n',
     b'* OK [CLOSED] previous mailbox closed\r\n'
     b'n6 NO [NONEXISTENT] no mailbox named Nope\r\n'),
    (b'n7 FETCH 1 FLAGS\r\n',
     b'n7 BAD FETCH not allowed in the authenticated state\r\n'),
    (b'n8 SELECT Archive\r\n',
     b'* 5 EXISTS\r\n'
     b'* 5 RECENT\r\n'
     b'* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Other)\r\n'
     b'* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Other \\*)] flags permitted\r\n'
     b'* OK [UNSEEN 1] first unseen\r\n'
     b'* OK [UIDVALIDITY {Archive}] UIDs valid\r\n'
     b'* OK [UIDNEXT 6] predicted next UID\r\n'
     b'* OK [MAILBOXID ({ID Archive})] mailbox id\r\n'
     b'n8 OK [READ-WRITE] SELECT completed\r\n'),
    (b'n9 UNSELECT\r\n',
     b'n9 OK UNSELECT completed\r\n'),
    (b'o1 FROB\r\n',
     b'o1 BAD unknown command FROB\r\n'),
    (b'(bad NOOP\r\n',
     b'* BAD missing or invalid tag\r\n'),
    (b'o2\r\n',
     b'* BAD missing or invalid tag\r\n'),
    (b'o3 UID FROB 1\r\n',
     b'o3 BAD unknown command FROB\r\n'),
    (b'o4 FETCH\r\n',
     b'o4 BAD expected SP\r\n'),
    (b'o5 SELECT "unterminated\r\n',
     b'o5 BAD malformed quoted string\r\n'),
    (b'o6 STORE 1 +FLAGS (\\Bogus)\r\n',
     b'o6 BAD invalid system flag\r\n'),
    (b'o7 AUTHENTICATE PLAIN\r\n',
     b'o7 BAD AUTHENTICATE not allowed in the authenticated state\r\n'),
    (b'o8 IDLE\r\n',
     b'+ idling\r\n'),
    (b'DONE\r\n',
     b'o8 OK IDLE terminated\r\n'),
    (b'o9 IDLE\r\n',
     b'+ idling\r\n'),
    (b'NOPE\r\n',
     b'o9 BAD expected DONE\r\n'),
    (b'p1 LOGOUT\r\n',
     b'* BYE rmail logging out\r\n'
     b'p1 OK LOGOUT completed\r\n'),

]


async def expect(c: RawClient, wanted: bytes, step: bytes) -> None:
    try:
        got = await asyncio.wait_for(c.reader.readexactly(len(wanted)), 5)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
        partial = exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""
        raise AssertionError(f"after {step[:60]!r}: wanted {wanted!r}, got only {partial!r}") from None
    assert got == wanted, f"after {step[:60]!r}"


async def _fill(runtime: ServerRuntime, wanted: bytes) -> bytes:
    """The transcript's placeholders: {X1100}, {Name} (UIDVALIDITY), {ID Name} (MAILBOXID,
    RFC 8474; a mailbox the step creates is waited for, it exists before the OK is sent)."""
    account = await runtime.accounts.get_user("alice@example.com")
    for _ in range(500):
        fill = {b"{X1100}": b"x" * 1100}
        for box in await runtime.store.list_mailboxes(account.id):
            name = box.name.encode()
            fill[b"{%s}" % name] = b"%d" % box.uidvalidity
            fill[b"{ID %s}" % name] = mailbox_id(box.id, box.uidvalidity).encode()
        out = wanted
        for key, value in fill.items():
            out = out.replace(key, value)
        if b"{ID " not in out:
            return out
        await asyncio.sleep(0.01)
    raise AssertionError(f"no mailbox for a placeholder in {wanted!r}")


async def test_every_command_byte_exact(runtime: ServerRuntime) -> None:
    c = await RawClient.connect(runtime.port("imap"))
    for send, wanted in STEPS:
        if send:
            await c.send(send)
        await expect(c, await _fill(runtime, wanted), send)
    assert await c.reader.read() == b""  # nothing after LOGOUT's reply
    await c.close()


BIG_HEADER = (b"From: \"Big, Sender\" <big@example.org>\r\nTo: alice@example.com\r\n"
              b"Subject: big one\r\nDate: Thu, 07 Mar 2024 12:00:00 +0000\r\n"
              b"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
BIG_BODY = b"".join(b"line %06d %s\r\n" % (n, b"y" * 60) for n in range(3000))
BIG = BIG_HEADER + BIG_BODY


async def test_streamed_message_byte_exact(runtime: ServerRuntime) -> None:
    """The same items for a message served from its file: metadata items beside streamed
    literals, header sections from the file's head, \\Seen set by a non-PEEK section."""
    assert len(BIG) > INLINE_BLOB_MAX
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    await c.send(b"a APPEND INBOX \"07-Mar-2024 12:00:00 +0000\" {%d+}\r\n%b\r\n" % (len(BIG), BIG))
    assert (await c.until_tagged(b"a")).startswith(b"a OK [APPENDUID ")
    await c.cmd(b"s", b"SELECT INBOX")
    envelope = (b'("Thu, 07 Mar 2024 12:00:00 +0000" "big one" (("Big, Sender" NIL "big" "example.org"))'
                b' (("Big, Sender" NIL "big" "example.org")) (("Big, Sender" NIL "big" "example.org"))'
                b' ((NIL NIL "alice" "example.com")) NIL NIL NIL NIL)')
    body = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 3000' % len(BIG_BODY)
    subject = b"Subject: big one\r\n\r\n"
    await c.send(b"f1 FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE "
                 b"BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT]<0.20> BODY.PEEK[]<3.4>)\r\n")
    await expect(c, b'* 1 FETCH (UID 1 FLAGS (\\Recent) INTERNALDATE "07-Mar-2024 12:00:00 +0000" '
                 b"RFC822.SIZE %d ENVELOPE %b BODY %b) BODYSTRUCTURE %b NIL NIL NIL NIL) "
                 b"BODY[HEADER.FIELDS (Subject)] {%d}\r\n%b BODY[TEXT]<0> {20}\r\n%b "
                 b"BODY[]<3> {4}\r\n%b)\r\nf1 OK FETCH completed\r\n"
                 % (len(BIG), envelope, body, body, len(subject), subject, BIG_BODY[:20], BIG[3:7]),
                 b"f1")
    await c.send(b"f2 FETCH 1 (BODY[TEXT]<%d.100> RFC822.HEADER)\r\n" % (len(BIG_BODY) - 10))
    await expect(c, b"* 1 FETCH (BODY[TEXT]<%d> {10}\r\n%b RFC822.HEADER {%d}\r\n%b "
                 b"FLAGS (\\Seen \\Recent))\r\nf2 OK FETCH completed\r\n"
                 % (len(BIG_BODY) - 10, BIG_BODY[-10:], len(BIG_HEADER), BIG_HEADER), b"f2")
    await c.send(b"f3 FETCH 1 (BODY.PEEK[1]<0.9> UID)\r\n")
    await expect(c, b"* 1 FETCH (BODY[1]<0> {9}\r\nline 0000 UID 1)\r\nf3 OK FETCH completed\r\n",
                 b"f3")
    await c.close()


async def test_replies_go_out_in_few_writes(runtime: ServerRuntime, monkeypatch) -> None:  # noqa: ANN001
    """Each write to an idle socket is a send() the client must read: a command's untagged
    responses go out together, then its tagged reply (SELECT's seven lines in one write)."""
    from rmail.server.imap import connection
    writes: list[bytes] = []
    original = connection.ImapConnection.write

    def counting(self, data: bytes) -> None:  # noqa: ANN001
        if data:
            writes.append(data)
        original(self, data)
    monkeypatch.setattr(connection.ImapConnection, "write", counting)
    c = await RawClient.connect(runtime.port("imap"))
    await c.login()
    for command, count in ((b"SELECT INBOX", 2), (b"LIST \"\" *", 2), (b"NOOP", 1),
                           (b"CAPABILITY", 2), (b"STATUS Sent (MESSAGES UIDNEXT)", 2)):
        writes.clear()
        await c.cmd(b"w", command)
        assert len(writes) == count, (command, writes)
    await c.close()

"""The capability lists the byte-exact tests expect, written out once (each extension's work
adds its names here, in protocol.py's order, and every transcript follows)."""

from __future__ import annotations

#: Listed on every connection, before and after login.
#: IMAP4rev2 (RFC 9051) right after IMAP4rev1, listed only beside BINARY (protocol.REV2_REQUIRES).
COMMON = (b"IMAP4rev1 IMAP4rev2 IDLE SPECIAL-USE NAMESPACE UIDPLUS MOVE ID ENABLE UNSELECT "
          b"LITERAL+ CONDSTORE QRESYNC ESEARCH SEARCHRES CONTEXT=SEARCH WITHIN SORT SORT=DISPLAY ESORT "
          b"CONTEXT=SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES LIST-EXTENDED LIST-STATUS "
          b"CHILDREN CREATE-SPECIAL-USE STATUS=SIZE APPENDLIMIT=26214400 BINARY MULTIAPPEND "
          b"CATENATE PREVIEW URLAUTH URLAUTH=BINARY OBJECTID SAVEDATE")
#: Before login where a password may travel (TLS active, or TLS not configured).
BEFORE_LOGIN = COMMON + b" AUTH=PLAIN AUTH=LOGIN SASL-IR"
#: Before login on cleartext when TLS is configured.
BEFORE_STARTTLS = COMMON + b" STARTTLS LOGINDISABLED"
REV2 = b"IMAP4rev2"
#: After login.
AFTER_LOGIN = COMMON + b" COMPRESS=DEFLATE QUOTA QUOTA=RES-STORAGE UTF8=ACCEPT NOTIFY"

-- The save date (RFC 8514 §3): when a message was saved into its mailbox, unix seconds.
-- APPEND, delivery, COPY, MOVE and import set it to that moment; RENAME keeps it. Messages
-- stored before rmail kept it get their INTERNALDATE rather than NIL ("unknown", which RFC 8514
-- also allows): for delivered mail and an APPEND without a date that is exactly the moment
-- of saving, and with it every message of every mailbox has a save date (SAVEDATESUPPORTED
-- matches all; SAVED* searches and expiry see old mail too). The same as SQLite's version 4.
ALTER TABLE messages ADD COLUMN savedate bigint;
UPDATE messages SET savedate = internaldate;
ALTER TABLE messages ALTER COLUMN savedate SET NOT NULL;

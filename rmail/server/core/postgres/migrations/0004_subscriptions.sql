-- Subscriptions are the user's own list of names, independent of mailboxes (RFC 3501 §6.3.6):
-- a name stays subscribed when its mailbox is deleted or renamed, and a name may be subscribed
-- before any mailbox has it. What LSUB showed before (subscribed, selectable mailboxes)
-- carries over.
CREATE TABLE subscriptions(
    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name text NOT NULL,                             -- Unicode, "/" separated, INBOX upper-case
    PRIMARY KEY (user_id, name)
);
INSERT INTO subscriptions(user_id, name)
SELECT user_id, name FROM mailboxes WHERE subscribed AND NOT noselect;
ALTER TABLE mailboxes DROP COLUMN subscribed;

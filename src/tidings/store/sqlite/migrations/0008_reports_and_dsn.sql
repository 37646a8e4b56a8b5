-- Reports about sent mail and the DSN extension (RFC 8621 §7, RFC 8098, RFC 3464, RFC 3461).

-- The Message-ID (without angle brackets) of the message a submission sent: an MDN's
-- Original-Message-ID or a DSN's returned header names it, and finds the submission through this
-- index. Only multipart/report deliveries look it up (mail/reports.py).
ALTER TABLE submissions ADD COLUMN message_id TEXT;
CREATE INDEX submissions_message_id ON submissions(account_id, message_id) WHERE message_id IS NOT NULL;

-- The DSN parameters a queue entry is sent with (RFC 3461 §4: RET and ENVID of MAIL, NOTIFY and
-- ORCPT of each RCPT), JSON {"mail": {...}, "rcpt": {address: {...}}} with decoded values; NULL when
-- none were given.
ALTER TABLE outbound_queue ADD COLUMN parameters TEXT;

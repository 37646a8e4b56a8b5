-- Mail flow (RFC 8621 §6–8): identities, email submissions, the outbound queue, the delivery
-- duplicate log, vacation responses and the log of vacation replies sent.

-- Delivery looks recipients up by address, case-insensitively (RFC 5321 §2.4: in practice).
CREATE INDEX users_address ON users(lower(address));

-- Identity (RFC 8621 §6). reply_to and bcc are JSON EmailAddress[] or NULL.
CREATE TABLE identities (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL,
    reply_to       TEXT,
    bcc            TEXT,
    text_signature TEXT NOT NULL DEFAULT '',
    html_signature TEXT NOT NULL DEFAULT '',
    may_delete     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX identities_account ON identities(account_id);

-- EmailSubmission (RFC 8621 §7). envelope is the JSON Envelope; delivery_status the JSON map of
-- recipient to DeliveryStatus (per-recipient status, rewritten as the queue progresses);
-- dsn_blob_ids/mdn_blob_ids JSON arrays. Times are epoch seconds.
CREATE TABLE submissions (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    identity_id     TEXT NOT NULL,
    email_id        TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    send_at         INTEGER NOT NULL,
    undo_status     TEXT NOT NULL,
    delivery_status TEXT NOT NULL,
    dsn_blob_ids    TEXT NOT NULL DEFAULT '[]',
    mdn_blob_ids    TEXT NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL
);
CREATE INDEX submissions_account ON submissions(account_id, send_at);

-- The outbound queue: one row per message still to be sent, whatever asked for it (a submission,
-- a vacation reply). Destroying a submission does not cancel its delivery (RFC 8621 §7.5), so the
-- link is cleared instead. recipients is a JSON array of [address, state, last reply] with state
-- 'pending', 'sent' or 'failed'. Times are epoch seconds (fractions allowed).
--
-- Claiming: a worker takes due rows whose lease is free or expired, setting lease_owner and
-- lease_until in one UPDATE ... RETURNING, so two workers (or processes) never hold the same row.
CREATE TABLE outbound_queue (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    submission_id INTEGER REFERENCES submissions(id) ON DELETE SET NULL,
    blob_id       TEXT NOT NULL,
    mail_from     TEXT NOT NULL,
    recipients    TEXT NOT NULL,
    created_at    REAL NOT NULL,
    due_at        REAL NOT NULL,
    expires_at    REAL NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    lease_owner   TEXT,
    lease_until   REAL
);
CREATE INDEX outbound_queue_due ON outbound_queue(due_at);
CREATE INDEX outbound_queue_submission ON outbound_queue(submission_id);

-- Duplicate delivery suppression: a message id delivered to a target (an account's mailbox) at a
-- time; a second delivery within the window is dropped (as Cyrus's duplicate delivery database).
CREATE TABLE delivered (
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message_id   TEXT NOT NULL,
    target       TEXT NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, message_id, target)
) WITHOUT ROWID;
CREATE INDEX delivered_time ON delivered(delivered_at);

-- VacationResponse (RFC 8621 §8): at most one row per account; no row means disabled.
CREATE TABLE vacation_responses (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    is_enabled INTEGER NOT NULL DEFAULT 0,
    from_date  INTEGER,
    to_date    INTEGER,
    subject    TEXT,
    text_body  TEXT,
    html_body  TEXT
);

-- Senders an account's vacation response replied to, and when (RFC 3834 §3.1.1: not too often).
CREATE TABLE vacation_replies (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender     TEXT NOT NULL,
    replied_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, sender)
) WITHOUT ROWID;

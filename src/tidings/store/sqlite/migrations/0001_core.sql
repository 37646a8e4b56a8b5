-- Core schema: users, tokens, accounts, the change log and per-type states, uploads, mailboxes.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    address       TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

-- One account per user for now; the table is separate so that shared accounts can come later.
CREATE TABLE accounts (
    id       INTEGER PRIMARY KEY,
    user_id  INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    -- The last change sequence number handed out in this account (see store/base.py).
    modseq   INTEGER NOT NULL DEFAULT 0,
    -- Changes at or below this sequence number may have been pruned: older states cannot be used.
    horizon  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE type_states (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (account_id, type)
) WITHOUT ROWID;

-- One row per object ever changed: its latest change, when it was created, whether it is gone.
CREATE TABLE changelog (
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    type           TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    modseq         INTEGER NOT NULL,
    created_modseq INTEGER NOT NULL,
    destroyed      INTEGER NOT NULL DEFAULT 0,
    -- The last change that was not a counts-only change (RFC 8621 §2.2 updatedProperties).
    full_modseq    INTEGER NOT NULL,
    PRIMARY KEY (account_id, type, object_id)
) WITHOUT ROWID;
CREATE INDEX changelog_by_modseq ON changelog(account_id, type, modseq);

-- Blobs an account may read: uploads (until they expire) and blobs its objects refer to.
CREATE TABLE account_blobs (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    blob_id    TEXT NOT NULL,
    type       TEXT NOT NULL DEFAULT 'application/octet-stream',
    size       INTEGER NOT NULL,
    refs       INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    PRIMARY KEY (account_id, blob_id)
) WITHOUT ROWID;
CREATE INDEX account_blobs_expiry ON account_blobs(expires_at) WHERE refs = 0;

CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    parent_id      INTEGER REFERENCES mailboxes(id),
    role           TEXT,
    sort_order     INTEGER NOT NULL DEFAULT 0,
    is_subscribed  INTEGER NOT NULL DEFAULT 1,
    total_emails   INTEGER NOT NULL DEFAULT 0,
    unread_emails  INTEGER NOT NULL DEFAULT 0,
    total_threads  INTEGER NOT NULL DEFAULT 0,
    unread_threads INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mailboxes_account ON mailboxes(account_id, parent_id);
CREATE UNIQUE INDEX mailboxes_role ON mailboxes(account_id, role) WHERE role IS NOT NULL;

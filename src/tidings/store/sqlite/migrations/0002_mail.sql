-- Mail: emails, their mailboxes, threads (the conversations index), per-mailbox thread summaries
-- (for exact, cheap counts and the collapsed list view) and the full-text index.

CREATE TABLE threads (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- RFC 5256 base subject of the message that started the thread; replies must match it.
    base_subject TEXT NOT NULL
);

-- Message-IDs seen in a thread (own Message-ID, In-Reply-To, References): how replies find it.
CREATE TABLE thread_refs (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    msgid      TEXT NOT NULL,
    thread_id  INTEGER NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, msgid, thread_id)
) WITHOUT ROWID;
CREATE INDEX thread_refs_thread ON thread_refs(thread_id);

CREATE TABLE emails (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    thread_id      INTEGER NOT NULL REFERENCES threads(id),
    blob_id        TEXT NOT NULL,
    size           INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    sent_at        INTEGER,
    -- Keywords, lower-cased, each surrounded by spaces (" $seen $flagged "), so that one can be
    -- tested with instr(keywords, ' $seen ').
    keywords       TEXT NOT NULL DEFAULT ' ',
    -- Neither $seen nor $draft (RFC 8621 §2 unreadEmails).
    unread         INTEGER NOT NULL,
    has_attachment INTEGER NOT NULL,
    -- Sort keys (RFC 8621 §4.4.2): the raw text and its i;unicode-casemap key.
    subject_sort   TEXT NOT NULL,
    subject_key    TEXT NOT NULL,
    from_sort      TEXT NOT NULL,
    from_key       TEXT NOT NULL,
    to_sort        TEXT NOT NULL,
    to_key         TEXT NOT NULL,
    -- The Message-ID, kept to recognise the same message imported again.
    message_id     TEXT,
    -- orjson documents: the fast list-view properties, and the headers and body structure.
    summary        BLOB NOT NULL,
    structure      BLOB NOT NULL
);
CREATE INDEX emails_thread ON emails(thread_id, received_at, id);
CREATE INDEX emails_received ON emails(account_id, received_at, id);
CREATE INDEX emails_blob ON emails(account_id, blob_id);

CREATE TABLE email_mailboxes (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id),
    email_id    INTEGER NOT NULL REFERENCES emails(id) ON DELETE CASCADE,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, email_id)
) WITHOUT ROWID;
CREATE INDEX email_mailboxes_by_date ON email_mailboxes(mailbox_id, received_at, email_id);
CREATE INDEX email_mailboxes_email ON email_mailboxes(email_id);

-- One row per (mailbox, thread) with at least one email of the thread in the mailbox.
CREATE TABLE mailbox_threads (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    thread_id  INTEGER NOT NULL REFERENCES threads(id),
    newest_at  INTEGER NOT NULL,
    newest_id  INTEGER NOT NULL,
    oldest_at  INTEGER NOT NULL,
    oldest_id  INTEGER NOT NULL,
    -- 1 when the thread counts towards the mailbox's unreadThreads (RFC 8621 §2).
    unread     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, thread_id)
) WITHOUT ROWID;
CREATE INDEX mailbox_threads_newest ON mailbox_threads(mailbox_id, newest_at, newest_id);
CREATE INDEX mailbox_threads_oldest ON mailbox_threads(mailbox_id, oldest_at, oldest_id);
CREATE INDEX mailbox_threads_thread ON mailbox_threads(thread_id);

-- Full-text index, rowid = emails.id. unicode61 with diacritics removed: case- and
-- accent-insensitive matching; FTS5 phrase queries give exact phrases.
CREATE VIRTUAL TABLE email_fts USING fts5(
    subject, from_, to_, cc, bcc, body, attachments,
    tokenize = 'unicode61 remove_diacritics 2'
);

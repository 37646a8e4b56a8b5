-- Twin of SQLite's 0006: a compact index of what sorting and collapsing full-text matches need
-- (index-only scans instead of reading each email's row).
CREATE INDEX emails_sort ON emails(id, account_id, received_at, thread_id);

-- Mail: mirrors store/sqlite/migrations/0006_mail_indexes.sql, a compact index to sort and collapse
-- full-text matches without reading each email's row (an index-only scan in PostgreSQL).
CREATE INDEX emails_sort ON emails(id, account_id, received_at, thread_id);

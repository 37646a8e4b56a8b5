-- JMAP ids are never reused (RFC 8620 §1.2): mirrors store/sqlite/migrations/0005_never_reuse_ids.sql.
-- PostgreSQL's identity sequences never hand out a number twice, even under concurrent inserts, so
-- the shared SQL's "one above the high-water mark" becomes nextval() of the table's sequence
-- (store/postgres/dialect.py), and the high-water table is a view of the sequences.

CREATE VIEW id_high_water (name, last_id) AS
    SELECT 'emails', CASE WHEN is_called THEN last_value ELSE 0 END FROM emails_id_seq
    UNION ALL SELECT 'threads', CASE WHEN is_called THEN last_value ELSE 0 END FROM threads_id_seq
    UNION ALL SELECT 'mailboxes', CASE WHEN is_called THEN last_value ELSE 0 END FROM mailboxes_id_seq;

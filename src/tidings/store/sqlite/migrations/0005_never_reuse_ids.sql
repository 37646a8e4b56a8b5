-- JMAP ids are never reused (RFC 8620 §1.2): a destroyed Email, Thread or Mailbox id must not come
-- back as a new object's, or clients (and the change log, keyed by id) would confuse the two. SQLite
-- gives a new row max(id) + 1, which reuses the id of the newest row once it is deleted; rather than
-- rebuild the tables with AUTOINCREMENT, the highest id ever used is kept here, and the stores insert
-- with an explicit id one above it. The triggers keep the mark right for any other insert too.

CREATE TABLE id_high_water (
    name    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO id_high_water (name, last_id) SELECT 'emails', coalesce(max(id), 0) FROM emails;
INSERT INTO id_high_water (name, last_id) SELECT 'threads', coalesce(max(id), 0) FROM threads;
INSERT INTO id_high_water (name, last_id) SELECT 'mailboxes', coalesce(max(id), 0) FROM mailboxes;

CREATE TRIGGER emails_high_water AFTER INSERT ON emails BEGIN
    UPDATE id_high_water SET last_id = NEW.id WHERE name = 'emails' AND last_id < NEW.id;
END;
CREATE TRIGGER threads_high_water AFTER INSERT ON threads BEGIN
    UPDATE id_high_water SET last_id = NEW.id WHERE name = 'threads' AND last_id < NEW.id;
END;
CREATE TRIGGER mailboxes_high_water AFTER INSERT ON mailboxes BEGIN
    UPDATE id_high_water SET last_id = NEW.id WHERE name = 'mailboxes' AND last_id < NEW.id;
END;

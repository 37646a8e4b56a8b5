-- Reports about sent mail and the DSN extension: mirrors store/sqlite/migrations/0008_reports_and_dsn.sql.
ALTER TABLE submissions ADD COLUMN message_id TEXT;
CREATE INDEX submissions_message_id ON submissions(account_id, message_id) WHERE message_id IS NOT NULL;

ALTER TABLE outbound_queue ADD COLUMN parameters TEXT;

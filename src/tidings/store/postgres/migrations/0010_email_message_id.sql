-- Mail: mirrors store/sqlite/migrations/0010_email_message_id.sql, an index to find an email by
-- its Message-ID for the `header` filter.
CREATE INDEX emails_message_id ON emails(account_id, lower(message_id));

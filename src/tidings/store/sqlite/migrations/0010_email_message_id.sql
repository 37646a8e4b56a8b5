-- Mail: find an email by its Message-ID through an index. The `header` filter with a whole
-- bracketed id ("<id@host>") is what clients send to find a message (a reply's parent, a
-- resent message); without this it read every email's stored header document.
CREATE INDEX emails_message_id ON emails(account_id, lower(message_id));

-- Mail: a compact index to sort and collapse full-text matches without reading each email's row
-- (a row holds its summary and structure documents, kilobytes each): a search reads one small
-- index entry per match.
CREATE INDEX emails_sort ON emails(id, account_id, received_at, thread_id);

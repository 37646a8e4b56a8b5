-- Blobs: small blobs (up to store/blobs.py INLINE_MAX octets, most delivered messages) kept in the
-- database instead of as files, so the commit that refers to one also makes it durable: one WAL
-- fsync per delivery instead of three (the blob file, its directory, the WAL). Content-addressed
-- like the files ("B" + SHA-256) and shared by every account; who may read one is account_blobs'.
-- A rowid table: its values are kilobytes, too large for a WITHOUT ROWID table's b-tree.
CREATE TABLE blob_data (
    blob_id TEXT PRIMARY KEY,
    data    BLOB NOT NULL
);

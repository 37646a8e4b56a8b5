-- Blobs: mirrors store/sqlite/migrations/0009_inline_blobs.sql, small blobs kept in the database
-- (bytea) so the commit that refers to one also makes it durable; larger ones stay files.
CREATE TABLE blob_data (
    blob_id TEXT PRIMARY KEY,
    data    BYTEA NOT NULL
);

-- Push (RFC 8620 §7.2, RFC 9749): mirrors store/sqlite/migrations/0003_push.sql.

CREATE TABLE push_subscriptions (
    id                TEXT PRIMARY KEY,
    user_id           BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE DEFERRABLE,
    device_client_id  TEXT NOT NULL,
    url               TEXT NOT NULL,
    p256dh            TEXT,
    auth              TEXT,
    verification_code TEXT NOT NULL,
    verified          INTEGER NOT NULL DEFAULT 0,
    expires_at        BIGINT NOT NULL,
    types             TEXT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);
CREATE INDEX push_subscriptions_expiry ON push_subscriptions(expires_at);

CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE DEFERRABLE,
    expires_at BIGINT NOT NULL
);

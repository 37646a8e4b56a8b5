-- Push (RFC 8620 §7.2, RFC 9749): push subscriptions per user, the server's own keys, and the
-- short-lived single-use tokens browsers use to open an event source or a WebSocket.

-- A PushSubscription belongs to the user whose credentials created it, not to an account. It has no
-- state string (PushSubscription has no /changes), so it is not in the change log.
CREATE TABLE push_subscriptions (
    id                TEXT PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_client_id  TEXT NOT NULL,
    url               TEXT NOT NULL,
    -- RFC 8291 keys (base64url as the client sent them), both NULL when the client sent none.
    p256dh            TEXT,
    auth              TEXT,
    -- The code sent in the PushVerification; verified becomes 1 once the client has set it.
    verification_code TEXT NOT NULL,
    verified          INTEGER NOT NULL DEFAULT 0,
    expires_at        INTEGER NOT NULL,
    -- JSON array of type names, NULL for every type.
    types             TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);
CREATE INDEX push_subscriptions_expiry ON push_subscriptions(expires_at);

-- Keys the server keeps for itself, e.g. the VAPID key pair (RFC 8292) every process signs with.
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Single-use access tokens for the event source and WebSocket URLs (browsers cannot send an
-- Authorization header there). Only a digest is stored; redeeming deletes the row.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

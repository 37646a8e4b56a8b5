-- Push subscriptions and push tokens are tied to the credential that created them (RFC 8620 §7.2:
-- only that credential sees them, and revoking it destroys them). `credential` is a credential id
-- (store/base.py: "password:<user id>:<digest of the password hash>" or "token:<digest of the token
-- digest>"), never a secret.
--
-- Subscriptions made before this migration cannot be attributed to the credential that made them
-- (only the user was recorded), and keeping them would leave them alive after that credential is
-- revoked. They are erased (URL and keys overwritten first, as store/sqlite/push.py does); clients
-- find their deviceClientId missing from PushSubscription/get and subscribe again, as they must
-- anyway within the 7-day expiry. Push tokens live 60 seconds and are simply dropped.
UPDATE push_subscriptions SET url = zeroblob(length(url)), p256dh = NULL, auth = NULL;
DELETE FROM push_subscriptions;
ALTER TABLE push_subscriptions ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE INDEX push_subscriptions_credential ON push_subscriptions(credential);

DELETE FROM access_tokens;
ALTER TABLE access_tokens ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE INDEX access_tokens_credential ON access_tokens(credential);

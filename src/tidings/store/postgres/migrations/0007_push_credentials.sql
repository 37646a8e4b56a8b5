-- Push subscriptions and push tokens tied to their credential: mirrors
-- store/sqlite/migrations/0007_push_credentials.sql (older subscriptions are erased, see there).
UPDATE push_subscriptions SET url = repeat('0', length(url)), p256dh = NULL, auth = NULL;
DELETE FROM push_subscriptions;
ALTER TABLE push_subscriptions ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE INDEX push_subscriptions_credential ON push_subscriptions(credential);

DELETE FROM access_tokens;
ALTER TABLE access_tokens ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE INDEX access_tokens_credential ON access_tokens(credential);

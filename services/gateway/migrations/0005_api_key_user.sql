-- API keys may act for a user (issue 10: the `/api/v1/user/...` routes manage that user's
-- signing keys). Additive: keys made before have none, as the bootstrap key.

ALTER TABLE api_keys ADD COLUMN user_login text;

-- The SHA-256 of each delivery's body as received: the delivery id header is not covered by
-- GitHub's signature (and GitLab's token covers nothing), so a captured body sent again
-- under a new id would otherwise be recorded again (an old push moving a branch's HEAD
-- back). Null for deliveries recorded before it was kept. Numbered apart from the other
-- parts' migrations so that parallel work cannot take the same version.

ALTER TABLE scm_deliveries ADD COLUMN body_digest text;
CREATE INDEX scm_deliveries_by_body ON scm_deliveries (provider, body_digest)
    WHERE body_digest IS NOT NULL;

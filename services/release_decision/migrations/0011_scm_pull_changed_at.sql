-- When GitHub says each pull request last changed (pull_request.updated_at): deliveries
-- may arrive out of order, and an older synchronize must not move the recorded head back
-- (its decision would be posted as the pull request's). Null when not known.

ALTER TABLE scm_pull_requests ADD COLUMN changed_at timestamptz;

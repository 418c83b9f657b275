-- Triage: when a finding's own state was last set by a finding.triaged event (NULL: never;
-- a finding that inherited its state from the triage memory keeps NULL). A VEX export's
-- timestamp is the latest of this and the snapshot's completion, so the same snapshot and
-- triage give the same document. Written by the scans projection from the event's time.
ALTER TABLE findings ADD COLUMN triaged_at timestamptz;

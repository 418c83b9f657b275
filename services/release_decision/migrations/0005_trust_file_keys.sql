-- Trust: the public halves of the keys read from GATEHOUSE_SIGNING_KEY_FILE, recorded at
-- start. Rotating to another file (or back to the generated key) must keep listing the old
-- key, or what it signed stops verifying. Public keys only: a file's private key is never
-- stored. Not a read model, so `gatehouse replay` leaves it alone.
CREATE TABLE file_keys (
    -- sha256 (hex) of the raw 32-byte public key.
    keyid text PRIMARY KEY,
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Trust: the Ed25519 keys that sign decision attestations. Not a read model (no event
-- carries a private key, and none ever should), so `gatehouse replay` leaves it alone.
-- One key is generated on the first start unless GATEHOUSE_SIGNING_KEY_FILE names one;
-- keys stay listed (GET /api/v1/trust/keys) so attestations they signed keep verifying.
CREATE TABLE signing_keys (
    -- sha256 (hex) of the raw 32-byte public key.
    keyid text PRIMARY KEY,
    -- Raw 32-byte private key. Readable by the release-decision role only.
    private_key bytea NOT NULL CHECK (length(private_key) = 32),
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

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

#!/bin/sh
# A role per service owning its schema; the passwords come from PASSWORD_<SERVICE>.
# Written by tests/unit/dev_credentials.py: edit that, not this.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE gatehouse_audit LOGIN PASSWORD '${PASSWORD_AUDIT}';
CREATE SCHEMA audit AUTHORIZATION gatehouse_audit;
CREATE ROLE gatehouse_scanner LOGIN PASSWORD '${PASSWORD_SCANNER}';
CREATE SCHEMA scanner AUTHORIZATION gatehouse_scanner;
CREATE ROLE gatehouse_signature_verifier LOGIN PASSWORD '${PASSWORD_SIGNATURE_VERIFIER}';
CREATE SCHEMA signature_verifier AUTHORIZATION gatehouse_signature_verifier;
CREATE ROLE gatehouse_release_decision LOGIN PASSWORD '${PASSWORD_RELEASE_DECISION}';
CREATE SCHEMA release_decision AUTHORIZATION gatehouse_release_decision;
CREATE ROLE gatehouse_webhook_fanout LOGIN PASSWORD '${PASSWORD_WEBHOOK_FANOUT}';
CREATE SCHEMA webhook_fanout AUTHORIZATION gatehouse_webhook_fanout;
CREATE ROLE gatehouse_gateway LOGIN PASSWORD '${PASSWORD_GATEWAY}';
CREATE SCHEMA gateway AUTHORIZATION gatehouse_gateway;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL

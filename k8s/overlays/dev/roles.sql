-- Development only: a role per service owning its schema (see shared/db.py).
CREATE ROLE gatehouse_audit LOGIN PASSWORD 'audit-dev';
CREATE SCHEMA audit AUTHORIZATION gatehouse_audit;
CREATE ROLE gatehouse_scanner LOGIN PASSWORD 'scanner-dev';
CREATE SCHEMA scanner AUTHORIZATION gatehouse_scanner;
CREATE ROLE gatehouse_signature_verifier LOGIN PASSWORD 'signature-verifier-dev';
CREATE SCHEMA signature_verifier AUTHORIZATION gatehouse_signature_verifier;
CREATE ROLE gatehouse_release_decision LOGIN PASSWORD 'release-decision-dev';
CREATE SCHEMA release_decision AUTHORIZATION gatehouse_release_decision;
CREATE ROLE gatehouse_webhook_fanout LOGIN PASSWORD 'webhook-fanout-dev';
CREATE SCHEMA webhook_fanout AUTHORIZATION gatehouse_webhook_fanout;
CREATE ROLE gatehouse_gateway LOGIN PASSWORD 'gateway-dev';
CREATE SCHEMA gateway AUTHORIZATION gatehouse_gateway;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

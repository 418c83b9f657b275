"""SQL of the audit log."""

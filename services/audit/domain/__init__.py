"""Pure rules of the audit log: the hash chain and how an event becomes an entry."""

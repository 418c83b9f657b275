"""The gateway: identity (projects, API keys, users) and the HTTP edge of Gatehouse."""

"""``gatehouse gate``: a CI step asking the gateway whether a commit may ship."""

"""Local stand-ins for third parties (HTTP servers that record the calls they receive)."""

"""Request and reply Structs of the services' request/reply endpoints (``svc.<service>.*``),
shared by the owner of an endpoint and its callers (usually the gateway)."""

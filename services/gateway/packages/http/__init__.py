"""The package protocols' HTTP handlers (aiohttp routes beside the JSON route table: they
stream request and response bodies, which ``Route.upload`` would read whole)."""

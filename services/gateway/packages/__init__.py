"""The package protocols at the gateway's edge: the PyPI simple and upload APIs
(``/pypi/<project>/<repo>/…``) and generic artifacts (``/generic/<project>/<repo>/<path>``).

``domain/`` is pure (names, file names, archives, the simple index, ranges, digests,
credentials); ``http/`` streams bytes between the client and the artifact blob store
(``shared.artifact_blobs``) and asks the scanner, which owns artifact metadata, over
``contracts.rpc.registry``.
"""

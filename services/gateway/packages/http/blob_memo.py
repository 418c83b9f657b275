"""Small artifact blobs kept in memory by digest, so that a hot wheel or METADATA file is
answered without a trip to a worker thread and the disk.

Content-addressed bytes never change, so nothing here can be stale: whether the file may be
downloaded is decided before (the scanner's verdict), this only saves reading it. Bounded by
``settings.artifact_memory_cache_bytes`` in total (0: off), least recently used out first;
only blobs up to :data:`MAX_ENTRY_BYTES` are kept.
"""

from __future__ import annotations

from collections import OrderedDict

from prometheus_client import Counter, Gauge

MAX_ENTRY_BYTES = 256 * 1024
_STATE_KEY = "gateway.blob_memo"

READS = Counter(
    "gatehouse_gateway_blob_memo_reads_total",
    "Small artifact blobs answered from memory (hit) or read from the store (miss)",
    ["outcome"],
)
HELD = Gauge("gatehouse_gateway_blob_memo_bytes", "Bytes of small artifact blobs held in memory")
_HIT, _MISS = READS.labels("hit"), READS.labels("miss")


class BlobMemo:
    def __init__(self, *, max_bytes: int, max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0

    def __len__(self) -> int:
        return len(self._blobs)

    @property
    def held_bytes(self) -> int:
        return self._held

    def get(self, digest: str) -> bytes | None:
        data = self._blobs.get(digest)
        if data is None:
            _MISS.inc()
            return None
        self._blobs.move_to_end(digest)
        _HIT.inc()
        return data

    def put(self, digest: str, data: bytes) -> None:
        if len(data) > self.max_entry_bytes or digest in self._blobs:
            return
        self._blobs[digest] = data
        self._held += len(data)
        while self._held > self.max_bytes:
            _, dropped = self._blobs.popitem(last=False)
            self._held -= len(dropped)
        HELD.set(self._held)

    def discard(self, digest: str) -> None:
        data = self._blobs.pop(digest, None)
        if data is not None:
            self._held -= len(data)
            HELD.set(self._held)


def blob_memo(state: dict[str, object], max_bytes: int) -> BlobMemo:
    """The process's memo (made on first use)."""
    found = state.get(_STATE_KEY)
    if not isinstance(found, BlobMemo):
        found = state[_STATE_KEY] = BlobMemo(max_bytes=max_bytes)
    return found

"""`gatehouse backup` and `gatehouse restore`: the event stream, its blobs and the state no
replay can rebuild, in one archive (:mod:`.archive` the format, :mod:`.command` the I/O)."""

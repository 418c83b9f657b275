"""Pure logic of the package protocols: no I/O, no clock (a wheel is read from a local file
by ``archive``, called in a thread by the HTTP layer)."""

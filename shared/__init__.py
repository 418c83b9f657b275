"""The Gatehouse service kit: settings, logging, metrics, bus, projections, database, HTTP."""

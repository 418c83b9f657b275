"""Search over the scanner's read models (see ``shared.search``)."""

"""The vulnerability database: OSV advisories and EPSS scores, imported, projected, and held
in memory as the matcher every scan uses."""

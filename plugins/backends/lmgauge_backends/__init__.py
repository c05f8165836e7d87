"""lmgauge-backends plugin distribution."""

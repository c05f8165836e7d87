"""lmgauge-datasets plugin distribution."""

"""lmgauge-exporters plugin distribution."""

"""lmgauge-benchmarks plugin distribution."""

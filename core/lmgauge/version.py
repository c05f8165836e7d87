"""The version of lmgauge (one place; ``lmgauge.__version__`` re-exports it)."""

__version__ = "0.1.0"

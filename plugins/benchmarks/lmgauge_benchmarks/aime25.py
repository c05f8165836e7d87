"""Registers ``aime25`` (see aime.py)."""
from lmgauge.plugin import hookimpl

from .aime import Aime25


@hookimpl
def register_benchmarks(register):
    register(Aime25())

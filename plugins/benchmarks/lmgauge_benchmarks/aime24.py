"""Registers ``aime24`` (see aime.py)."""
from lmgauge.plugin import hookimpl

from .aime import Aime24


@hookimpl
def register_benchmarks(register):
    register(Aime24())

"""The core's footprint at two commits, side by side: install size of ``pip install lmgauge``
(the core alone, in a fresh venv) and ``lmgauge --help`` start-up time (core alone, and with
the built-in plugins installed, which ``--help`` loads to list their commands).

    python bench/core_footprint.py [REF ...]     (default: the session's base commit and HEAD)

Each ref is exported with ``git archive`` into a temp folder; each venv is made with the
running Python. Start-up is the median of 15 runs of ``lmgauge --help`` (and ``lmgauge eval
--help``), alternating refs round by round so both see the same machine load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGINS = ["plugins/benchmarks", "plugins/backends", "plugins/datasets", "plugins/exporters"]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def make_env(ref: str, root: Path, with_plugins: bool) -> Path:
    src = root / f"src-{ref}"
    if not src.exists():
        src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    venv = root / f"venv-{ref}-{'plugins' if with_plugins else 'core'}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(src)], check=True)
    if with_plugins:
        subprocess.run([*pip, *[str(src / p) for p in PLUGINS]], check=True)
    return venv


def site_size(venv: Path) -> int:
    return du(next((venv / "lib").glob("python*/site-packages")))


def help_time(venv: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(venv / "bin" / "lmgauge"), *args, "--help"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("refs", nargs="*", default=["67e5034", "HEAD"])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lmgauge-footprint-"))
    envs = {}
    for ref in args.refs:
        envs[ref] = {kind: make_env(ref, root, kind == "plugins") for kind in ("core", "plugins")}
    times: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.runs):
        for ref in args.refs:
            for kind in ("core", "plugins"):
                for cmd in ((), ("eval",)):
                    times.setdefault((ref, kind, " ".join(cmd) or "-"), []).append(help_time(envs[ref][kind], *cmd))
    print(f"| ref | core install (MB) | `lmgauge --help`, core (ms) | `--help`, with plugins (ms) | `eval --help`, with plugins (ms) |")
    print("|---|---:|---:|---:|---:|")
    for ref in args.refs:
        size = site_size(envs[ref]["core"]) / 1e6
        med = lambda k, c: 1000 * statistics.median(times[(ref, k, c)])  # noqa: E731
        print(f"| {ref} | {size:.1f} | {med('core', '-'):.0f} | {med('plugins', '-'):.0f} | {med('plugins', 'eval'):.0f} |")
    print(f"(venvs in {root}; {args.runs} runs each, median; python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

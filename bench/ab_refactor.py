"""The run-folder library's cost, side by side with the commit before it (issue [1/6]).

For two source trees (default: a worktree of e99d346, the last commit before the library, and
this checkout), in alternating rounds so that both see the same machine:

- TTFT error (bench/perf_accuracy.py: client TTFT minus the server's truth, request by request);
- requests/s of `lmgauge perf` (bench/perf_throughput.py, lmgauge's own line);
- the eval runner's end-to-end requests/s (bench/eval_overhead.py's runner part);
- `lmgauge --help` start-up (wall time of the whole process, median of N).

Each bench script is the one of THIS checkout, run with PYTHONPATH pointing at the tree under
test (its core and its plugins come first on sys.path, ahead of the editable installs), so the
measuring code is the same and only the measured code differs.

    git worktree add /tmp/base e99d346
    .venv/bin/python bench/ab_refactor.py --base /tmp/base [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLUGINS = ("backends", "datasets", "benchmarks", "exporters")


def env_for(tree: Path) -> dict[str, str]:
    paths = [str(tree / "core")] + [str(tree / "plugins" / p) for p in PLUGINS]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "HF_HUB_OFFLINE": "1",
            "LMGAUGE_PLUGINS": "math_500,openai,openqa,line_by_line,text_files,random"}


def run(tree: Path, *cmd: str, timeout: int = 900) -> str:
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env_for(tree), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed on {tree}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def ttft_error(tree: Path) -> tuple[float, float]:
    out = run(tree, str(HERE / "perf_accuracy.py"))
    m = re.search(r"TTFT error \(client - server truth\): p50 ([+\-\d.]+) ms.*?p99 ([+\-\d.]+) ms", out)
    if not m:
        raise SystemExit(f"no TTFT error line in:\n{out[-1500:]}")
    return float(m.group(1)), float(m.group(2))


def throughput(tree: Path) -> float:
    out = run(tree, str(HERE / "perf_throughput.py"), "--reps", "1")
    m = re.search(r"lmgauge perf \(1 process\)\s*\|?\s*([\d,]+(?:\.\d+)?)", out) or \
        re.search(r"lmgauge[^\n]*?([\d,]+\.\d+) req/s", out)
    if not m:
        raise SystemExit(f"no lmgauge req/s line in:\n{out[-1500:]}")
    return float(m.group(1).replace(",", ""))


def runner(tree: Path) -> float:
    out = run(tree, "-c", "import sys; sys.path.insert(0, 'bench'); import eval_overhead as e; "
                          "r = e.bench_runner(2); print('RPS', r['requests_per_s'])")
    return float(re.search(r"RPS ([\d.]+)", out).group(1))


def help_start(tree: Path, n: int = 9) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lmgauge.cli", "--help"], env=env_for(tree), capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="/tmp/base", help="a worktree of the commit before the change")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    trees = {"before (e99d346)": Path(args.base), "after (this checkout)": REPO}
    got: dict[str, dict[str, list]] = {name: {"ttft": [], "rps": [], "runner": [], "help": []} for name in trees}
    for r in range(args.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            got[name]["help"].append(help_start(tree))
            got[name]["ttft"].append(ttft_error(tree))
            got[name]["rps"].append(throughput(tree))
            got[name]["runner"].append(runner(tree))
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v[-1]}" for k, v in got[name].items()), flush=True)
    print("\n| | TTFT error p50 / p99 (ms), per round | lmgauge perf req/s (1 process) | eval runner req/s | "
          "`lmgauge --help` (ms, median of 9) |")
    print("|---|---|---|---|---|")
    for name, g in got.items():
        ttft = "; ".join(f"{a:+.2f} / {b:+.2f}" for a, b in g["ttft"])
        print(f"| {name} | {ttft} | {', '.join(f'{x:,.0f}' for x in g['rps'])} | "
              f"{', '.join(f'{x:,.0f}' for x in g['runner'])} | {', '.join(f'{x:.0f}' for x in g['help'])} |")


if __name__ == "__main__":
    main()

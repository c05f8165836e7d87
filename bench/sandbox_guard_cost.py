"""What the sandbox's protection against a grader dying mid-set-up costs per execution.

Two pieces (plugins/sandboxes/lmgauge_sandboxes/local.py, docs/code.md "cleanup"):

- **born dying**: bubblewrap is started by ``setpriv --pdeathsig=KILL``, so it holds the death
  signal before it clones the sandbox (its own ``--die-with-parent`` comes after the clone);
- **guard**: coreutils ``timeout --signal=KILL`` as the sandbox's PID 2, which ends a sandbox
  whose grader died while bubblewrap's init was still setting it up (the init arms
  ``--die-with-parent`` only after forking the program) a grace after its time limit.

One trivial execution (``pass``) in the local sandbox with bubblewrap, four variants
(neither, each alone, both) interleaved round by round so that machine noise falls on all alike.

    python bench/sandbox_guard_cost.py [--rounds 200]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from lmgauge.plugin import Limits
from lmgauge_sandboxes.local import LocalSandbox


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    born, guard = LocalSandbox._born_dying, LocalSandbox._guard
    variants = {"neither": (lambda f: [], lambda f, l: []), "born dying only": (born, lambda f, l: []),
                "guard only": (lambda f: [], guard), "both (what runs)": (born, guard)}
    sb = LocalSandbox({"local_sandbox_bwrap": "auto"})
    problem = sb.isolation()
    if problem:
        raise SystemExit(f"needs bubblewrap: {problem}")
    times: dict[str, list[float]] = {k: [] for k in variants}
    print(f"# {args.rounds} rounds, load average before: {os.getloadavg()[0]:.2f}")
    try:
        for _ in range(args.rounds):
            for name, (b, g) in variants.items():
                LocalSandbox._born_dying, LocalSandbox._guard = staticmethod(b), staticmethod(g)
                t0 = time.perf_counter()
                ex = sb.run({"main.py": "pass"}, ["python", "main.py"], None, Limits(timeout_s=10))
                times[name].append(time.perf_counter() - t0)
                if ex.status != "ok":
                    raise SystemExit(f"{name}: {ex.status} {ex.reason}")
    finally:
        LocalSandbox._born_dying, LocalSandbox._guard = born, guard
    base = statistics.median(times["neither"])
    print("\n| variant | median (ms) | p90 (ms) | median − neither (ms) |\n|---|---:|---:|---:|")
    for name, v in times.items():
        med = statistics.median(v)
        print(f"| {name} | {1000 * med:.1f} | {1000 * sorted(v)[int(0.9 * len(v))]:.1f} | {1000 * (med - base):+.1f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

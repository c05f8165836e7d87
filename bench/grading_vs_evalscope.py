"""Grading side by side with EvalScope on R1-style edge cases with a known truth.

A test server of our own (``bench/r1_answer_server.py``, started here on 127.0.0.1) answers every
question like an R1-style reasoning model, in one edge-case style per run, and knows for every
response whether a correct grader must mark it right (a seeded rule: about half right, half
wrong; a cut-off thinking is never an answer). ``lmgauge eval`` and ``evalscope eval`` are run
against it on the same questions and files; each tool's per-sample verdicts (lmgauge:
``samples.jsonl`` ``correct``; EvalScope: ``reviews/MODEL/*.jsonl`` ``acc``) are compared with the
truth, per style: agreement, false positives (a wrong response marked right), false negatives,
samples a tool left unscored, and how many of the style's edge-case responses (those where a
grader that mishandles the edge case gives the wrong verdict: a cut-off thinking whose box holds
the gold answer, an AIME answer whose padding differs from the gold's, every ``close_only`` and
``intermediate_box`` response since their other box holds the other value) the tool got wrong.

Setup (EvalScope in a venv of its own, never in the repo's)::

    python3 -m venv /work/evalscope-venv && /work/evalscope-venv/bin/pip install -q evalscope==1.14.1

Run (data: MATH-500, AIME 2024 and AIME 2025 jsonl files, e.g. those in /work/shared/data)::

    .venv/bin/python bench/grading_vs_evalscope.py --evalscope /work/evalscope-venv/bin/evalscope \\
        --math500 /work/shared/data/math500.jsonl --aime24 /work/shared/data/aime24.jsonl \\
        --aime25 /work/shared/data/aime25.jsonl [--math-limit 100] [--json OUT.json]

Both tools read the same per-benchmark file (written under ``--work``): the first
``--math-limit`` MATH-500 rows unchanged, AIME 2024 unchanged, AIME 2025 with its ``prompt``
stripped of the appended instruction and stored as ``problem`` (EvalScope's AIME adapter reads
``problem``) and its integer ``answer`` as a string. The ``unpadded_aime`` style runs on the AIME
questions only; the other styles on all of them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from r1_answer_server import AIME, STYLES, SUFFIX, Question, QuestionIndex, build_app, load_questions, make_answer  # noqa: E402

TOOLS = ("lmgauge", "evalscope")


@dataclass
class Tally:
    """One tool's verdicts on one style, against the truth."""
    n: int = 0
    agree: int = 0
    false_pos: int = 0
    false_neg: int = 0
    unscored: int = 0
    edge_n: int = 0       # responses where mishandling the style's edge case flips the verdict
    edge_wrong: int = 0   # ... of which this tool got wrong
    examples: list[dict] = field(default_factory=list)

    def add(self, q: Question, truth: bool, edge: bool, verdict: bool | None, extracted, response: str) -> None:
        self.n += 1
        self.edge_n += edge
        self.edge_wrong += edge and verdict != truth
        if verdict is None:
            self.unscored += 1
        elif verdict == truth:
            self.agree += 1
            return
        elif verdict:
            self.false_pos += 1
        else:
            self.false_neg += 1
        if len(self.examples) < 3:
            self.examples.append({"question": q.key, "gold": q.gold, "truth": truth, "verdict": verdict,
                                  "extracted": extracted, "response": response[-300:]})


def write_data(args, work: Path) -> dict[str, Path]:
    """The per-benchmark files both tools read: ``work/data/BENCH/test.jsonl``."""
    def rows(path: str) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]

    data = {"math_500": rows(args.math500)[: args.math_limit], "aime24": rows(args.aime24), "aime25": []}
    for row in rows(args.aime25):
        problem = SUFFIX.sub("", str(row.get("problem") or row["prompt"])).strip()
        data["aime25"].append({"problem": problem, "answer": str(row["answer"])})
    out = {}
    for bench, items in data.items():
        path = work / "data" / bench / "test.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
        out[bench] = path
    return out


class ServerThread:
    """The answer server on 127.0.0.1 (a free port) in a thread of its own."""

    def __init__(self, questions: list[Question], seed: int):
        self.app = build_app(questions, seed)
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()


def run_lmgauge(args, url: str, style: str, benches: list[str], data: dict[str, Path], out: Path) -> list[dict]:
    cmd = [args.lmgauge, "eval", "--backend", "openai", "--base-url", url, "--model", style, "--api-key", "none",
           "--concurrency", "16", "--max-tokens", "32768", "--grading-workers", "1", "--no-progress",
           "--output", str(out)]
    for b in benches:
        cmd += ["--benchmark", b, "--dataset-path", f"{b}={data[b]}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lmgauge eval failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [{"prompt": r["prompt"], "verdict": r["correct"], "extracted": r.get("extracted"),
             "response": r.get("response") or ""} for r in records]


def run_evalscope(args, url: str, style: str, benches: list[str], data: dict[str, Path], out: Path) -> list[dict]:
    dataset_args = {b: {"local_path": str(data[b].parent)} for b in benches}
    cmd = [args.evalscope, "eval", "--model", style, "--api-url", url, "--api-key", "none",
           "--eval-type", "openai_api", "--datasets", *benches, "--dataset-args", json.dumps(dataset_args),
           "--eval-batch-size", "16", "--generation-config", json.dumps({"max_tokens": 32768}),
           "--work-dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out.parent)
    reviews = sorted(out.glob(f"*/reviews/{style}/*.jsonl"))
    if proc.returncode != 0 or not reviews:
        raise SystemExit(f"evalscope eval failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
    found = []
    for path in reviews:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            score = r["sample_score"]["score"]
            values = score.get("value") or {}
            acc = values.get(score.get("main_score_name") or "acc", values.get("acc"))
            usable = score.get("status") in ("success", "degraded") and acc is not None
            found.append({"prompt": r["messages"][0]["content"], "verdict": bool(acc) if usable else None,
                          "extracted": score.get("extracted_prediction"), "response": score.get("prediction") or ""})
    return found


def versions(args) -> dict[str, str]:
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    es_python = str(Path(args.evalscope).with_name("python"))
    return {"lmgauge": out([args.lmgauge, "--version"]),
            "evalscope": out([args.evalscope, "--version"]),
            "math_verify (lmgauge venv)": out([sys.executable, "-c", "import importlib.metadata as m; print(m.version('math-verify'))"]),
            "math_verify (evalscope venv)": out([es_python, "-c", "import importlib.metadata as m; print(m.version('math-verify'))"]),
            "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description="Grading side by side with EvalScope on R1-style edge cases")
    ap.add_argument("--evalscope", default="/work/evalscope-venv/bin/evalscope", help="evalscope executable (own venv)")
    ap.add_argument("--lmgauge", default=str(Path(sys.executable).with_name("lmgauge")), help="lmgauge executable")
    ap.add_argument("--math500", required=True)
    ap.add_argument("--aime24", required=True)
    ap.add_argument("--aime25", required=True)
    ap.add_argument("--math-limit", type=int, default=100, help="first N MATH-500 questions (default 100)")
    ap.add_argument("--styles", default=",".join(STYLES), help=f"comma-separated, of: {', '.join(STYLES)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="folder for data and run folders (default: a temporary one)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    if not shutil.which(args.evalscope):
        raise SystemExit(f"--evalscope {args.evalscope}: not an executable; install EvalScope in a venv of its own")
    work = Path(args.work or tempfile.mkdtemp(prefix="grading-vs-evalscope-")).resolve()
    work.mkdir(parents=True, exist_ok=True)

    data = write_data(args, work)
    questions = load_questions({b: str(p) for b, p in data.items()})
    index = QuestionIndex(questions)
    server = ServerThread(questions, args.seed)
    url = f"http://127.0.0.1:{server.port}/v1"

    results: dict[str, dict] = {}
    for style in args.styles.split(","):
        benches = list(AIME) if style == "unpadded_aime" else ["math_500", *AIME]
        results[style] = {}
        for tool, runner in (("lmgauge", run_lmgauge), ("evalscope", run_evalscope)):
            t0 = time.perf_counter()
            rows = runner(args, url, style, benches, data, work / "runs" / f"{tool}-{style}")
            tally, seen = Tally(), set()
            for row in rows:
                q = index.find(row["prompt"] if isinstance(row["prompt"], str) else json.dumps(row["prompt"]))
                if q is None or q.bench not in benches:
                    raise SystemExit(f"{tool} {style}: a sample matches no question: {str(row['prompt'])[:200]}")
                seen.add(q.key)
                ans = make_answer(style, q, args.seed)
                tally.add(q, ans.truth, ans.edge, row["verdict"], row["extracted"], row["response"])
            expected = {q.key for q in questions if q.bench in benches}
            if seen != expected or tally.n != len(expected):
                raise SystemExit(f"{tool} {style}: graded {tally.n} samples of {len(seen)} questions, expected {len(expected)}")
            results[style][tool] = {**tally.__dict__, "seconds": round(time.perf_counter() - t0, 1),
                                    "truth_right": sum(make_answer(style, q, args.seed).truth
                                                       for q in questions if q.bench in benches)}
            print(f"{style:28s} {tool:9s} agree {tally.agree}/{tally.n}  FP {tally.false_pos}  FN {tally.false_neg}"
                  f"  unscored {tally.unscored}", flush=True)

    table = ["| style | questions (truth: right) | tool | agrees with truth | false positives | false negatives "
             "| unscored | wrong on edge-case responses |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for style, per_tool in results.items():
        for tool in TOOLS:
            t = per_tool[tool]
            table.append(f"| `{style}` | {t['n']} ({t['truth_right']}) | {tool} | {t['agree']}/{t['n']} "
                         f"({100 * t['agree'] / t['n']:.1f} %) | {t['false_pos']} | {t['false_neg']} | {t['unscored']} "
                         f"| {t['edge_wrong']} of {t['edge_n']} |")
    print("\n" + "\n".join(table))
    meta = {"versions": versions(args), "seed": args.seed, "questions": {b: sum(q.bench == b for q in questions) for b in data},
            "work": str(work), "date": time.strftime("%Y-%m-%d")}
    print("\n" + json.dumps(meta["versions"]))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

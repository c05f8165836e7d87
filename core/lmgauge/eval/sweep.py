"""Sweeps: one eval per value of a generation setting, and whether the setting did anything.

``lmgauge eval ... --sweep KEY=V1,V2,...`` (repeatable: a grid over several keys) runs the same
questions once per variant. KEY is ``temperature``, ``top_p``, ``max_tokens`` or ``seed`` (the
run's own settings), or any other request body field (``reasoning_effort``, ``top_k``,
``chat_template_kwargs`` …), sent as a top-level field of every request as ``--extra-body``
would send it. Values are read as JSON where they parse (``0.6``, ``true``, ``{"a": 1}``), else
as text (``low``); ``KEY=[...]`` gives them as one JSON list (values holding commas).

The folder (``--output DIR``):

- ``DIR/run.json`` kind ``sweep``, ``DIR/config.yaml`` the command's settings (with ``sweep``);
- ``DIR/KEY=V/`` (grid: ``DIR/K1=a,K2=b/``) one ordinary, resumable eval run folder per
  variant, its run.json naming the sweep (``"sweep": ".."``) and its ``values``;
- ``DIR/sweep.json`` (:func:`summarize`): ``{"keys", "variants": [{"values", "dir", "scores",
  "lengths", ...}], "comparisons", "no_effect", ...}``;
- ``DIR/report.html``.

Running the same command again (or ``lmgauge eval --resume DIR``) continues every variant.

**no_effect.** Every two variants are compared, per benchmark, on the same questions
(common random numbers: every variant is sent the same seeds):

- score: per-question AveragePass@1, exact McNemar for 0/1 values, else a sign-flip
  permutation test (the engine of ``lmgauge compare``, :func:`lmgauge.eval.paired.paired_test`);
- length: per-question mean completion tokens (over the question's answered samples with
  counts), a paired sign-flip permutation test on the differences, with a paired bootstrap CI
  (:func:`lmgauge.eval.paired.paired_means`).

All these p-values form one family, adjusted with Holm's step-down method, so that a setting
the server ignores is called an effect at most 5 % of the time however many variants and
benchmarks there are. ``no_effect`` is true when no test of the family is significant, false
when one is, and null while a variant is unfinished. A true ``no_effect`` says the sweep found
no difference it could detect: ``underpowered`` flags sweeps too small for any difference to be
significant.

This module reads and summarizes; :func:`lmgauge.eval.runner.run_sweep` runs the variants.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson

from ..errors import ConfigError
from ..runfolder import MAIN_METRIC, OVERALL, RunFolder, load_run, read_manifest
from ..texttable import clean_cell, grid_table
from .compare import _row_seed
from .paired import DEFAULT_RESAMPLES, PairedResult, format_p, format_points, paired_means, paired_test

SWEEP_FILE = "sweep.json"
ALPHA = 0.05
#: the run's own generation settings a sweep may vary, with their types; any other key is a
#: request body field (extra_body)
GENERATION_KEYS: dict[str, type] = {"temperature": float, "top_p": float, "max_tokens": int, "seed": int}
#: body fields lmgauge writes itself: sweeping them would break the requests
RESERVED = ("model", "messages", "prompt", "n", "stream", "stream_options")
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass(frozen=True)
class SweepKey:
    """One ``--sweep KEY=V1,V2,...``: the values (typed) and their texts (folder names)."""

    key: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]

    @property
    def core(self) -> bool:
        """A setting of the run's own (temperature …), not a request body field."""
        return self.key in GENERATION_KEYS


@dataclass(frozen=True)
class Variant:
    """One run of the sweep: its values by key and its folder's name."""

    values: dict[str, Any]
    texts: dict[str, str]

    @property
    def name(self) -> str:
        return ",".join(f"{k}={_SAFE.sub('_', v)}" for k, v in self.texts.items())

    @property
    def label(self) -> str:
        """The values as written: ``low`` for a sweep of one key, ``k1=a, k2=b`` for a grid."""
        if len(self.texts) == 1:
            return next(iter(self.texts.values()))
        return ", ".join(f"{k}={v}" for k, v in self.texts.items())


def _typed(key: str, text: str, spec: str) -> Any:
    kind = GENERATION_KEYS.get(key)
    if kind is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    try:
        value = float(text) if kind is float else int(text)
    except ValueError:
        what = "a number" if kind is float else "an integer"
        raise ConfigError(f"--sweep {spec!r}: {text!r} is not {what}", f"give {key} values like 0.6,1.0") from None
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"--sweep {spec!r}: {text!r} is not a finite number")
    low, strict = _RANGES.get(key, (None, False))
    if low is not None and (value <= low if strict else value < low):
        raise ConfigError(f"--sweep {spec!r}: {key.replace('_', '-')} must be {'>' if strict else '≥'} {low:g}, got {text}")
    return value


#: the lower bounds the run's own settings have (EvalConfig), checked value by value
_RANGES = {"max_tokens": (1, False), "temperature": (0, False), "top_p": (0, True)}


def parse_sweep(spec: str, config_keys: Iterable[str] = ()) -> SweepKey:
    """``KEY=V1,V2,...`` or ``KEY=[JSON, ...]``; a bad spec is one ConfigError line."""
    key, sep, rest = str(spec).partition("=")
    key, rest = key.strip(), rest.strip()
    how = "use --sweep KEY=V1,V2,... e.g. --sweep reasoning_effort=low,medium,high or --sweep temperature=0.6,1.0"
    if not sep or not key or not rest:
        raise ConfigError(f"--sweep {spec!r}: cannot read it", how)
    if key.replace("-", "_") in GENERATION_KEYS:
        key = key.replace("-", "_")
    if key in RESERVED:
        raise ConfigError(f"--sweep {key}: lmgauge sets this request field itself", "sweep a generation setting")
    if key not in GENERATION_KEYS and key in set(config_keys):
        raise ConfigError(f"--sweep {key}: not a generation setting",
                          "sweep temperature, top_p, max_tokens, seed or a request body field such as reasoning_effort")
    if rest.startswith("["):
        try:
            items = orjson.loads(rest)
        except orjson.JSONDecodeError:
            raise ConfigError(f"--sweep {spec!r}: the values are not a JSON list", how) from None
        if not isinstance(items, list):
            raise ConfigError(f"--sweep {spec!r}: the values are not a JSON list", how)
        texts = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in items]
        values = [_typed(key, t, spec) if key in GENERATION_KEYS else v for t, v in zip(texts, items)]
    else:
        texts = [t.strip() for t in rest.split(",")]
        if any(not t for t in texts):
            raise ConfigError(f"--sweep {spec!r}: an empty value", how)
        values = [_typed(key, t, spec) for t in texts]
    if len(values) < 2:
        raise ConfigError(f"--sweep {spec!r}: a sweep needs at least two values", how)
    seen: list[Any] = []
    for v in values:
        if any(orjson.dumps(v) == orjson.dumps(w) for w in seen):
            raise ConfigError(f"--sweep {spec!r}: the value {v!r} is given twice", "give each value once")
        seen.append(v)
    names = [_SAFE.sub("_", t) for t in texts]
    if len(set(names)) < len(names):
        raise ConfigError(f"--sweep {spec!r}: two values give the same folder name ({', '.join(names)})",
                          "give values that differ in letters or digits")
    return SweepKey(key, tuple(values), tuple(texts))


def parse_sweeps(specs: Sequence[str], config: Any = None) -> list[SweepKey]:
    """Every ``--sweep`` of a command, checked against the run's settings (``config``, an
    EvalConfig): a key swept twice, or also set by its own flag or in ``--extra-body``, is refused
    (the sweep's values would silently replace it)."""
    keys = type(config).keys() if config is not None else ()
    out: list[SweepKey] = []
    for spec in specs:
        sk = parse_sweep(spec, keys)
        if any(o.key == sk.key for o in out):
            raise ConfigError(f"--sweep {sk.key} is given twice", "give each key once (several keys make a grid)")
        if config is not None:
            if sk.core and getattr(config, sk.key) is not None:
                raise ConfigError(f"--sweep {sk.key} and --{sk.key.replace('_', '-')} are both given",
                                  f"drop --{sk.key.replace('_', '-')}: the sweep sets it for every variant")
            if not sk.core and sk.key in (config.extra_body or {}):
                raise ConfigError(f"--sweep {sk.key} is also in --extra-body",
                                  f"drop {sk.key} from --extra-body: the sweep sets it for every variant")
        out.append(sk)
    if len(out) > 1 and math.prod(len(k.values) for k in out) > 64:
        raise ConfigError(f"--sweep: the grid has {math.prod(len(k.values) for k in out)} variants (more than 64)",
                          "sweep fewer values")
    return out


def variants(keys: Sequence[SweepKey]) -> list[Variant]:
    """The variants in the order of the flags (the last key varies fastest)."""
    out = []
    for combo in itertools.product(*(list(zip(k.values, k.texts)) for k in keys)):
        out.append(Variant({k.key: v for k, (v, _) in zip(keys, combo)}, {k.key: t for k, (_, t) in zip(keys, combo)}))
    return out


def variant_settings(config: Any, variant: Variant, root: Path) -> Any:
    """The EvalConfig of one variant: the command's settings with the variant's values (a
    generation setting in its field, any other key in ``extra_body``), no sweep, its own folder
    ``root/NAME`` (resumed when it holds a run)."""
    import dataclasses

    changes: dict[str, Any] = {}
    extra = dict(config.extra_body or {})
    for key, value in variant.values.items():
        if key in GENERATION_KEYS:
            changes[key] = value
        else:
            extra[key] = value
    out = root / variant.name
    cfg = dataclasses.replace(config, **changes, extra_body=extra, sweep=[], output=str(out), resume=None,
                              options=dict(config.options))
    cfg.validate()
    cfg._check_ranges()
    return cfg

# ---------------------------------------------------------------------------- the summary


@dataclass
class _Questions:
    """One variant's per-question figures of one benchmark."""

    seen: set[str] = field(default_factory=set)
    scores: dict[str, list[float]] = field(default_factory=dict)
    tokens: dict[str, list[int]] = field(default_factory=dict)


def read_variant(run: RunFolder) -> dict[str, _Questions]:
    """Per benchmark, in one pass over the journal: the questions seen, each question's graded
    scores (as ``lmgauge compare`` reads them) and the completion tokens of its answered
    samples with counts."""
    out: dict[str, _Questions] = {}
    for rec in run.samples():
        q = out.get(rec.benchmark)
        if q is None:
            q = out[rec.benchmark] = _Questions()
        q.seen.add(rec.sample_id)
        if rec.graded:
            q.scores.setdefault(rec.sample_id, []).append(float(rec.score))
        if not rec.failed and rec.completion_tokens is not None:
            q.tokens.setdefault(rec.sample_id, []).append(int(rec.completion_tokens))
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down rejections of a family of p-values (family-wise error ≤ alpha)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] <= alpha / (m - rank):
            rejected[i] = True
        else:
            break
    return rejected


def _result(r: PairedResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    d = r.to_dict()
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _variant_entry(variant: Variant, run: RunFolder | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"values": dict(variant.values), "dir": variant.name, "label": variant.label,
                             "complete": False, "scores": {}, "lengths": {}, "budget_curve": {}}
    if run is None or run.report is None:
        return entry
    rep = run.report
    entry["complete"] = bool(rep.complete)
    for b in rep.benchmark_names():
        row = rep.main_row(b)
        if row is not None:
            entry["scores"][b] = {"metric": row.metric, "score": row.score, "ci_low": row.ci_low,
                                  "ci_high": row.ci_high, "count": row.count}
    for s in rep.benchmarks:
        if s.lengths is not None:
            entry["lengths"][s.benchmark] = s.lengths
        if s.budget_curve:
            entry["budget_curve"][s.benchmark] = s.budget_curve
    entry["samples"] = sum(s.samples for s in rep.benchmarks)
    entry["graded"] = sum(s.graded for s in rep.benchmarks)
    return entry


def _pair(qa: _Questions, qb: _Questions, bench: str, alpha: float, seed: int,
          resamples: int) -> tuple[PairedResult | None, PairedResult | None, int, int]:
    """(score test, length test, paired questions for each) of one benchmark in two variants."""
    ids = sorted(qa.seen & qb.seen)
    scored = [s for s in ids if s in qa.scores and s in qb.scores]
    score = None
    if scored:
        score = paired_test([_mean(qa.scores[s]) for s in scored], [_mean(qb.scores[s]) for s in scored], alpha,
                            _row_seed(seed, bench, OVERALL), resamples)
    counted = [s for s in ids if s in qa.tokens and s in qb.tokens]
    tokens = None
    if counted:
        tokens = paired_means([_mean(qa.tokens[s]) for s in counted], [_mean(qb.tokens[s]) for s in counted], alpha,
                              _row_seed(seed, bench, "tokens"), resamples)
    return score, tokens, len(scored), len(counted)


def _best_p(n: int, resamples: int) -> float:
    """The smallest two-sided p-value of the exact sign-flip (or McNemar) test on n paired
    questions; a Monte Carlo test (more than 20 differing) cannot go below 1 / (1 + resamples)."""
    from .paired import EXACT_MAX_NONZERO

    exact = 2.0 * 0.5 ** n if n else 1.0
    return exact if n <= EXACT_MAX_NONZERO else max(exact, 1.0 / (1 + resamples))


def summarize(root: str | os.PathLike, keys: Sequence[SweepKey] | None = None, *, alpha: float = ALPHA,
              seed: int = 0, resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """The sweep's document (what ``DIR/sweep.json`` holds) from its variant folders: each
    variant's main scores, lengths and budget curves (from its report.json), the paired tests
    of every two variants (scores and mean lengths per benchmark, one pass over each journal),
    Holm-adjusted as one family, and ``no_effect`` (see the module doc). ``keys``: the sweep's
    keys (default: from ``DIR/config.yaml``)."""
    root = Path(root)
    if keys is None:
        from ..runfolder import RunConfig

        keys = parse_sweeps(RunConfig.read(root).values.get("sweep") or [])
    plan = variants(keys)
    runs: list[RunFolder | None] = []
    for v in plan:
        vdir = root / v.name
        runs.append(load_run(vdir) if (vdir / "run.json").is_file() or (vdir / "report.json").is_file() else None)
    entries = [_variant_entry(v, r) for v, r in zip(plan, runs)]
    questions = [read_variant(r) if r is not None else None for r in runs]
    comparisons: list[dict[str, Any]] = []
    notes: list[str] = []
    untested = False
    for i, j in itertools.combinations(range(len(plan)), 2):
        qa, qb = questions[i], questions[j]
        if qa is None or qb is None or not entries[i]["complete"] or not entries[j]["complete"]:
            untested = True
            continue
        for bench in [b for b in qa if b in qb]:
            if qa[bench].seen != qb[bench].seen:
                notes.append(f"{bench}: {plan[i].label} and {plan[j].label} hold different questions; "
                             "compared on those in both")
            score, tokens, n_scored, n_counted = _pair(qa[bench], qb[bench], bench, alpha, seed, resamples)
            comparisons.append({"a": plan[i].name, "b": plan[j].name, "a_label": plan[i].label,
                                "b_label": plan[j].label, "benchmark": bench, "adjacent": j == i + 1,
                                "questions": n_scored, "counted_questions": n_counted,
                                "score": _result(score), "tokens": _result(tokens)})
    family = [(c, part) for c in comparisons for part in ("score", "tokens") if c[part] is not None]
    rejected = holm([c[part]["p_value"] for c, part in family], alpha)
    for (c, part), rej in zip(family, rejected):
        c[part]["significant_adjusted"] = rej
    tests = len(family)
    threshold = alpha / tests if tests else alpha
    # could any test have been significant? The smallest p-value n paired questions allow (all
    # of them differing one way) against the strictest threshold of Holm's steps
    underpowered = bool(family) and all(
        _best_p(c["questions" if part == "score" else "counted_questions"], resamples) > threshold
        for c, part in family)
    complete = all(e["complete"] for e in entries)
    if untested or not complete:
        no_effect = None
    else:
        no_effect = not any(rejected) if family else None
    effects = [f"{c['benchmark']}: {c['a_label']} → {c['b_label']}: {'score' if part == 'score' else 'mean tokens'} "
               f"{_delta_text(c[part], part)}" for (c, part), rej in zip(family, rejected) if rej]
    warnings: list[str] = []
    names = ", ".join(k.key for k in keys)
    if no_effect:
        warnings.append(f"no effect: no two variants of {names} differ in score or in mean length beyond noise "
                        f"({tests} paired tests, Holm-adjusted at {alpha:g}); the server may ignore "
                        f"{'this setting' if len(keys) == 1 else 'these settings'}"
                        + ("; with this few questions no difference could be significant: sweep more questions"
                           if underpowered else ""))
    elif no_effect is None:
        warnings.append("not every variant is finished: no_effect is undecided; run the same command again to "
                        "finish the sweep")
    return {"kind": "sweep", "schema_version": 2, "keys": [k.key for k in keys],
            "values": {k.key: list(k.values) for k in keys}, "metric": MAIN_METRIC, "alpha": alpha,
            "complete": complete, "variants": entries, "comparisons": comparisons,
            "no_effect": no_effect, "effects": effects, "underpowered": underpowered,
            "tests": {"score": "paired per question: exact McNemar (0/1), else sign-flip permutation (AveragePass@1)",
                      "length": "paired sign-flip permutation on per-question mean completion tokens",
                      "adjustment": "Holm step-down over every score and length test", "count": tests,
                      "seed": seed, "resamples": resamples},
            "notes": list(dict.fromkeys(notes)), "warnings": warnings}


def write_summary(root: str | os.PathLike, doc: dict[str, Any]) -> Path:
    from ..files import atomic_write

    return atomic_write(Path(root) / SWEEP_FILE, orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def is_sweep(folder: str | os.PathLike) -> bool:
    m = read_manifest(folder)
    return m is not None and m.kind == "sweep"

# ---------------------------------------------------------------------------- words and tables


def _delta_text(r: dict[str, Any], part: str) -> str:
    if part == "score":
        return f"{format_points(r['diff'])} points (p {format_p(r['p_value'])})"
    return f"{r['diff']:+,.0f} tokens (p {format_p(r['p_value'])})"


def _f(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


def _tok(v: Any) -> str:
    return "-" if v is None else f"{float(v):,.0f}"


def variant_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (variant, benchmark): score and CI, mean completion tokens, tokens per
    correct answer, truncation rate."""
    rows = []
    for v in doc.get("variants") or []:
        benches = list(dict.fromkeys([*(v.get("scores") or {}), *(v.get("lengths") or {})]))
        if not benches:
            rows.append({"variant": v.get("label") or v.get("dir"), "dir": v.get("dir"), "benchmark": "-",
                         "score": None, "ci_low": None, "ci_high": None, "mean_tokens": None,
                         "tokens_per_correct": None, "truncation_rate": None, "complete": v.get("complete")})
        for b in benches:
            sc = (v.get("scores") or {}).get(b) or {}
            ln = (v.get("lengths") or {}).get(b) or {}
            rows.append({"variant": v.get("label") or v.get("dir"), "dir": v.get("dir"), "benchmark": b,
                         "score": sc.get("score"), "ci_low": sc.get("ci_low"), "ci_high": sc.get("ci_high"),
                         "count": sc.get("count"), "mean_tokens": (ln.get("completion_tokens") or {}).get("mean"),
                         "tokens_per_correct": ln.get("tokens_per_correct"),
                         "truncation_rate": ln.get("truncation_rate"), "complete": v.get("complete")})
    return rows


def _variant_header(doc: dict[str, Any]) -> str:
    keys = [str(k) for k in doc.get("keys") or []]
    return keys[0] if len(keys) == 1 else "Variant"


def sweep_table(doc: dict[str, Any]) -> str:
    rows = []
    for r in variant_rows(doc):
        ci = "-" if r["ci_low"] is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        trunc = "-" if r["truncation_rate"] is None else f"{100 * r['truncation_rate']:.1f}%"
        rows.append([r["variant"] + ("" if r["complete"] else " (unfinished)"), r["benchmark"], _f(r["score"]), ci,
                     _tok(r["mean_tokens"]), _tok(r["tokens_per_correct"]), trunc])
    return grid_table([_variant_header(doc), "Benchmark", "Score", "95% CI", "Mean tokens", "Tokens/correct",
                       "Truncated"], rows, right={2, 4, 5, 6})


def comparison_table(doc: dict[str, Any], adjacent_only: bool = True) -> str:
    rows = []
    for c in doc.get("comparisons") or []:
        if adjacent_only and not c.get("adjacent"):
            continue
        s, t = c.get("score") or {}, c.get("tokens") or {}
        rows.append([f"{c['a_label']} → {c['b_label']}", c["benchmark"], str(c.get("questions", "-")),
                     format_points(s["diff"]) if s else "-",
                     f"[{format_points(s['ci_low'])}, {format_points(s['ci_high'])}]" if s else "-",
                     (format_p(s["p_value"]) + (" *" if s.get("significant_adjusted") else "")) if s else "-",
                     f"{t['diff']:+,.0f}" if t else "-",
                     f"[{t['ci_low']:+,.0f}, {t['ci_high']:+,.0f}]" if t else "-",
                     (format_p(t["p_value"]) + (" *" if t.get("significant_adjusted") else "")) if t else "-"])
    head = _variant_header(doc)
    return grid_table([f"A → B ({head})" if head != "Variant" else "A → B", "Benchmark", "N", "Δ score (pts)",
                       "95% CI", "p", "Δ mean tokens", "95% CI", "p"], rows, right={2, 3, 5, 6, 8})


def sweep_text(doc: dict[str, Any]) -> str:
    """The terminal output of a sweep: the variants' table, each variant against the next
    (paired), and the verdict on whether the setting had an effect."""
    keys = ", ".join(doc.get("keys") or [])
    n = len(doc.get("variants") or [])
    lines = [f"sweep of {keys}: {n} variants ({doc.get('metric') or MAIN_METRIC} per benchmark)", sweep_table(doc)]
    if any(c.get("adjacent") for c in doc.get("comparisons") or []):
        tests = (doc.get("tests") or {}).get("count")
        lines += [f"each variant against the next, paired by question (* significant after Holm's adjustment over "
                  f"{tests} tests at {doc.get('alpha', ALPHA):g}):", comparison_table(doc)]
    verdict = doc.get("no_effect")
    if verdict is False:
        lines += [f"effect: {e}" for e in doc.get("effects") or []]
    lines += [f"note: {n}" for n in doc.get("notes") or []]
    return "\n".join(clean_cell(x) if "\n" not in x else x for x in lines)


def stale_variants(root: str | os.PathLike, doc: dict[str, Any]) -> list[str]:
    """Variants whose report.json is newer than sweep.json (one resumed on its own): the
    summary no longer describes them until the sweep is run again."""
    root = Path(root)
    try:
        at = (root / SWEEP_FILE).stat().st_mtime
    except OSError:
        return []
    out = []
    for v in doc.get("variants") or []:
        rp = root / str(v.get("dir") or "") / "report.json"
        try:
            if rp.stat().st_mtime > at + 1e-3:
                out.append(str(v.get("dir")))
        except OSError:
            continue
    return out


__all__ = ["SWEEP_FILE", "GENERATION_KEYS", "SweepKey", "Variant", "parse_sweep", "parse_sweeps", "variants",
           "variant_settings", "read_variant", "holm", "summarize", "write_summary", "is_sweep", "variant_rows",
           "sweep_table", "comparison_table", "sweep_text", "stale_variants"]

"""lmgauge compare: paired tests (McNemar, sign-flip permutation, bootstraps), their calibration
under no true difference, and the command on synthetic run folders."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import assert_one_line_error, run_cli
from fixtures.runfolders import make_perf_run
from lmgauge.cli import OPTIONAL_COMMANDS, main
from lmgauge.errors import DataError
from lmgauge.eval.compare import compare_runs, compare_section_for_runs, compare_section_html, compare_text
from lmgauge.eval.paired import (BOOTSTRAP, MCNEMAR, NEWCOMBE, PERMUTATION_EXACT, PERMUTATION_MC,
                                 bootstrap_ci, mcnemar_exact, newcombe_paired_ci, paired_binary, paired_means,
                                 paired_test, sign_flip_pvalue)


# --------------------------------------------------------------------------------------
# synthetic run folders
def write_run(path: Path, benches: dict[str, dict[str, list[float | None]]], model: str = "model-a",
              subsets: dict[str, list[str]] | None = None, missing: int = 0) -> Path:
    """An eval run folder: ``benches`` maps benchmark -> sample_id -> per-repeat scores
    (None: a failed request, journaled with ``error``)."""
    import yaml

    path.mkdir(parents=True, exist_ok=True)
    lines, summaries = [], []
    for bench, questions in benches.items():
        for q, (sid, scores) in enumerate(questions.items()):
            subs = (subsets or {}).get(sid) or [f"Level {q % 3 + 1}"]
            for r, score in enumerate(scores):
                err = score is None
                score = None if err else float(score)
                lines.append({"benchmark": bench, "sample_id": sid, "repeat": r, "subsets": subs,
                              "question": f"q {sid}", "response": None if err else "\\boxed{1}",
                              "score": score, "correct": None if err else score >= 1.0,
                              "truncated": False, "error": "HTTP 500 after 5 retries" if err else None})
        summaries.append({"benchmark": bench, "questions": len(questions), "missing": missing, "warnings": []})
    (path / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    cfg = {"model": model, "backend": "openai", "benchmark": list(benches)}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    report = {"kind": "eval", "model": model, "backend": "openai", "results": [], "benchmarks": summaries, "config": cfg}
    (path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return path


def ids(n: int) -> list[str]:
    return [f"test/q{i:04d}.json" for i in range(n)]


def compare_cli(*args: str) -> subprocess.CompletedProcess:
    """``lmgauge compare ...`` as a user runs it (through lmgauge.cli.main's error handling)."""
    if "compare" in OPTIONAL_COMMANDS:
        return run_cli("compare", *args)
    code = ("import sys; from lmgauge.cli import cli, main; from lmgauge.eval.compare_cli import compare; "
            "cli.add_command(compare); main(sys.argv[1:])")
    return subprocess.run([sys.executable, "-c", code, "compare", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def compare_here(monkeypatch, capsys):
    """``lmgauge compare ...`` in this process, through lmgauge.cli.main (its one-line errors);
    quicker than a subprocess for the many small cases."""
    monkeypatch.setitem(OPTIONAL_COMMANDS, "compare", "lmgauge.eval.compare_cli")

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main(["compare", *args])
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["lmgauge", "compare", *args], rc, out.out, out.err)

    return run


def binary_pair(n: int, b_only: int, a_only: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes over n questions with exactly b_only / a_only discordant questions."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.5).astype(float)
    b = a.copy()
    wrong, right = np.flatnonzero(a == 0), np.flatnonzero(a == 1)
    b[rng.choice(wrong, b_only, replace=False)] = 1
    b[rng.choice(right, a_only, replace=False)] = 0
    return a, b


# --------------------------------------------------------------------------------------
# the tests themselves
@pytest.mark.parametrize("b_only,a_only", [(1, 7), (0, 0), (0, 6), (12, 3), (40, 55), (5, 5), (200, 150)])
def test_mcnemar_exact_matches_binomtest(b_only, a_only):
    expected = stats.binomtest(b_only, b_only + a_only, 0.5).pvalue if b_only + a_only else 1.0
    assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_by_hand():
    # 1 vs 7 discordant: 2 * (C(8,0) + C(8,1)) / 2**8
    assert mcnemar_exact(1, 7) == pytest.approx(2 * (1 + 8) / 256)
    assert mcnemar_exact(7, 1) == mcnemar_exact(1, 7)
    # 0 vs 6: 2 / 64 = 0.03125 -- the fewest discordant pairs that can be significant at 5%
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32) and mcnemar_exact(0, 5) > 0.05
    assert mcnemar_exact(5, 5) == 1.0


def test_newcombe_interval_matches_published_value():
    # Fagerland, Lydersen & Laake (Cavo et al. 2012 data): 59, 6 / 16, 80 -> -0.0621 (-0.1186 to -0.0046)
    lo, hi = newcombe_paired_ci(59, 6, 16, 80)
    assert (round(lo, 4), round(hi, 4)) == (-0.1186, -0.0046)
    # mirror image: swapping A and B negates the interval
    lo2, hi2 = newcombe_paired_ci(59, 16, 6, 80)
    assert (lo2, hi2) == pytest.approx((-hi, -lo))


def test_binary_path_chosen_for_single_repeat_and_numbers():
    a, b = binary_pair(200, 35, 5)
    r = paired_test(a, b)
    assert (r.test, r.ci_method) == (MCNEMAR, NEWCOMBE)
    assert (r.b_only, r.a_only, r.differing) == (35, 5, 40)
    assert r.diff == pytest.approx(30 / 200)
    assert r.p_value == pytest.approx(stats.binomtest(5, 40, 0.5).pvalue)
    assert r.significant and 0 < r.ci_low < 0.15 < r.ci_high
    assert r.verdict().startswith("B is 15.0 points higher than A (95% CI +")
    assert "significant at 5% (p < 0.001, exact McNemar)" in r.verdict()


def test_exact_sign_flip_matches_scipy_permutation_test():
    rng = np.random.default_rng(3)
    a = rng.random(30)
    b = a.copy()
    b[:14] += rng.normal(0.05, 0.2, 14)  # 14 differing questions: exact enumeration
    r = paired_means(a, b, seed=1)
    assert r.test == PERMUTATION_EXACT and r.resamples is None and r.differing == 14
    d = (b - a)[:14]
    ref = stats.permutation_test((d,), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples",
                                 n_resamples=np.inf, alternative="two-sided")
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_monte_carlo_sign_flip_agrees_with_exact_mcnemar():
    # on +-1 differences a sign flip is a fair coin: the permutation test is McNemar's
    d = np.array([1.0] * 30 + [-1.0] * 14)
    exact = mcnemar_exact(30, 14)
    p, used = sign_flip_pvalue(d, np.random.default_rng(0), resamples=20_000)
    assert used == 20_000
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4
    # no differing question at all: p = 1, exact
    assert sign_flip_pvalue(np.zeros(50), np.random.default_rng(0)) == (1.0, None)


def test_bootstrap_interval_agrees_with_scipy_percentile():
    """The expanded interval is scipy's percentile interval at the level 2*Phi(sqrt(n/(n-1)) t) - 1."""
    rng = np.random.default_rng(5)
    d = rng.normal(0.03, 0.2, 40) + rng.exponential(0.05, 40)
    lo, hi = bootstrap_ci(d, np.random.default_rng(1), 20_000)
    z = math.sqrt(40 / 39) * stats.t.ppf(0.975, 39)
    ref = stats.bootstrap((d,), np.mean, n_resamples=20_000, method="percentile", random_state=2,
                          confidence_level=2 * stats.norm.cdf(z) - 1).confidence_interval
    width = ref.high - ref.low
    assert abs(lo - ref.low) < 0.03 * width and abs(hi - ref.high) < 0.03 * width
    # wider than the plain 95% percentile interval (few questions), and around the mean
    plain = stats.bootstrap((d,), np.mean, n_resamples=20_000, method="percentile", random_state=2).confidence_interval
    assert hi - lo > 1.02 * (plain.high - plain.low)
    assert lo < d.mean() < hi


def test_repeated_path_reproducible_and_seed_dependent():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 9, 300) / 8
    b = np.clip(a + rng.integers(-2, 3, 300) / 8, 0, 1)
    r1, r2 = paired_test(a, b, seed=7), paired_test(a, b, seed=7)
    assert r1.test == PERMUTATION_MC and r1.ci_method == BOOTSTRAP
    assert r1.to_dict() == r2.to_dict()
    r3 = paired_test(a, b, seed=8)
    assert (r3.ci_low, r3.ci_high) != (r1.ci_low, r1.ci_high)
    assert r3.diff == r1.diff


def test_repeated_path_detects_true_difference():
    rng = np.random.default_rng(11)
    p = rng.beta(1, 1, 150)
    a = rng.binomial(8, p) / 8
    b = rng.binomial(8, np.clip(p + 0.1, 0, 1)) / 8
    r = paired_test(a, b, seed=0)
    assert r.test == PERMUTATION_MC and r.significant and r.ci_low > 0


def _rate_bounds(trials: int, alpha: float) -> float:
    """Upper bound on the rejection rate of a level-alpha test over ``trials``: 3 binomial sd."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def test_calibration_single_repeat_no_true_difference():
    """Same per-question difficulty in A and B: McNemar rejects at most ~5% of the time and the
    Newcombe interval covers the true difference 0 at least ~95% of the time."""
    rng = np.random.default_rng(2024)
    trials, n, alpha = 1000, 120, 0.05
    rejections = covered = 0
    for _ in range(trials):
        p = rng.beta(0.7, 0.7, n)  # questions of very different difficulty
        a = (rng.random(n) < p).astype(float)
        b = (rng.random(n) < p).astype(float)
        r = paired_binary(a, b, alpha)
        rejections += r.significant
        covered += r.ci_low <= 0 <= r.ci_high
    assert rejections / trials <= _rate_bounds(trials, alpha)
    assert rejections / trials >= 0.005  # conservative, not dead
    assert covered / trials >= 1 - _rate_bounds(trials, alpha)


def test_calibration_repeated_sampling_no_true_difference():
    """Per-question means over repeats (A 4, B 8 repeats): the sign-flip test rejects ~5% of
    the time (not far below: it is not a conservative test) and the bootstrap interval covers 0."""
    rng = np.random.default_rng(77)
    trials, n, alpha = 400, 60, 0.05
    rejections = covered = 0
    for t in range(trials):
        p = rng.beta(0.7, 0.7, n)
        a = rng.binomial(4, p) / 4
        b = rng.binomial(8, p) / 8
        r = paired_means(a, b, alpha, seed=t, resamples=1000)
        rejections += r.significant
        covered += r.ci_low <= 0 <= r.ci_high
    rate = rejections / trials
    assert 0.01 <= rate <= _rate_bounds(trials, alpha), rate
    assert covered / trials >= 1 - _rate_bounds(trials, alpha), covered / trials


def test_bootstrap_interval_covers_on_small_subsets():
    """AIME-sized subsets (15 questions, 4 repeats, B truly 10 points better): the interval
    still covers the true difference ~95% of the time (a plain percentile or BCa interval
    covers ~89% here)."""
    rng = np.random.default_rng(15)
    trials, n = 500, 15
    covered = 0
    for t in range(trials):
        p = rng.beta(0.7, 0.7, n)
        pb = np.clip(p + 0.1, 0, 1)
        a, b = rng.binomial(4, p) / 4, rng.binomial(4, pb) / 4
        r = paired_means(a, b, seed=t, resamples=1000)
        covered += r.ci_low <= float(np.mean(pb - p)) <= r.ci_high
    assert covered / trials >= 1 - _rate_bounds(trials, 0.05), covered / trials


def test_verdict_wording():
    a = np.array([1.0, 0, 1, 0, 1])
    same = paired_test(a, a)
    assert same.verdict().startswith("B and A score the same (+0.0 points, 95% CI ")
    assert "not significant at 5% (p = 1.000, exact McNemar); the runs agree on every question" in same.verdict()
    few = paired_test(a, np.array([1.0, 1, 1, 1, 1]))
    assert few.underpowered and "with 2 differing questions no result could reach 5%" in few.verdict()
    lower = paired_test(*binary_pair(200, 3, 30))
    assert lower.verdict("base", "tuned").startswith("tuned is 13.5 points lower than base")


# --------------------------------------------------------------------------------------
# run folders and the command
def _single_repeat_runs(tmp_path: Path, n: int = 200, b_only: int = 35, a_only: int = 5):
    a, b = binary_pair(n, b_only, a_only, seed=1)
    qs = ids(n)
    ra = write_run(tmp_path / "A", {"math_500": {q: [x] for q, x in zip(qs, a)}}, model="base")
    rb = write_run(tmp_path / "B", {"math_500": {q: [x] for q, x in zip(qs, b)}}, model="tuned")
    return ra, rb, a, b


def test_cli_known_difference_is_significant(tmp_path):
    ra, rb, a, b = _single_repeat_runs(tmp_path)
    out = tmp_path / "ab.json"
    proc = compare_cli(str(ra), str(rb), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "math_500: B is 15.0 points higher than A" in proc.stdout
    assert "Δ (B−A)" in proc.stdout and "exact McNemar" in proc.stdout
    data = json.loads(out.read_text())
    overall = next(r for r in data["rows"] if (r["benchmark"], r["subset"]) == ("math_500", "OVERALL"))
    assert overall["n"] == 200 and overall["significant"] is True
    assert overall["diff"] == pytest.approx(0.15)
    assert overall["mean_a"] == pytest.approx(a.mean()) and overall["mean_b"] == pytest.approx(b.mean())
    assert overall["p_value"] == pytest.approx(stats.binomtest(5, 40, 0.5).pvalue)
    assert overall["ci_low"] > 0 and overall["test"] == MCNEMAR
    subsets = {r["subset"]: r for r in data["rows"] if r["subset"] != "OVERALL"}
    assert set(subsets) == {"Level 1", "Level 2", "Level 3"}
    assert sum(r["n"] for r in subsets.values()) == 200
    assert data["a"]["model"] == "base" and data["b"]["model"] == "tuned"


def test_cli_no_difference_not_significant(tmp_path, compare_here):
    ra, rb, _, _ = _single_repeat_runs(tmp_path, b_only=12, a_only=10)
    proc = compare_here(str(ra), str(rb), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    overall = json.loads(proc.stdout)["rows"][0]
    assert overall["subset"] == "OVERALL" and overall["significant"] is False
    assert overall["p_value"] == pytest.approx(stats.binomtest(10, 22, 0.5).pvalue)
    assert "not significant at 5%" in overall["verdict"]


def test_cli_refuses_differing_question_sets(tmp_path):
    qs = ids(50)
    ra = write_run(tmp_path / "A", {"math_500": {q: [1.0] for q in qs[:48]}})
    rb = write_run(tmp_path / "B", {"math_500": {q: [1.0] for q in qs[2:]}})
    proc = compare_cli(str(ra), str(rb))
    assert_one_line_error(proc, "cannot pair math_500", "48 in A, 48 in B", "2 only in A: test/q0000.json, test/q0001.json",
                          "2 only in B: test/q0048.json, test/q0049.json", "--resume")
    assert proc.stdout == ""


def test_refusal_lists_first_few_ids_and_counts(tmp_path):
    qs = ids(40)
    ra = write_run(tmp_path / "A", {"gpqa_diamond": {q: [0.0] for q in qs[:30]}})
    rb = write_run(tmp_path / "B", {"gpqa_diamond": {q: [0.0] for q in qs[:20]}})
    with pytest.raises(DataError) as exc:
        compare_runs(ra, rb)
    line = exc.value.line()
    assert "10 only in A: test/q0020.json, test/q0021.json, test/q0022.json, ..." in line
    assert "0 only in B" in line and "\n" not in line


def test_cli_bad_inputs_are_one_line(tmp_path, compare_here):
    ra, rb, _, _ = _single_repeat_runs(tmp_path, n=20, b_only=2, a_only=1)
    perf = make_perf_run(tmp_path / "perf")["dir"]
    assert_one_line_error(compare_here(str(ra), str(perf)), "is a perf run", "two eval run folders")
    assert_one_line_error(compare_here(str(ra), str(rb), "--alpha", "1.5"), "--alpha")
    assert_one_line_error(compare_here(str(ra), str(rb), "--resamples", "5"), "--resamples")
    assert_one_line_error(compare_here(str(ra), str(tmp_path / "nope")), "does not exist")
    assert_one_line_error(compare_here(str(ra), str(rb), "--json", str(tmp_path)), "cannot write", "--json")
    other = write_run(tmp_path / "C", {"aime24": {q: [1.0] for q in ids(5)}})
    assert_one_line_error(compare_here(str(ra), str(other)), "nothing to compare", "A: math_500", "B: aime24")


def test_repeated_runs_with_errors_and_skipped_benchmark(tmp_path):
    rng = np.random.default_rng(4)
    qs = ids(120)
    p = rng.beta(1, 1, 120)
    a_scores = {q: list(rng.binomial(1, pi, 4).astype(float)) for q, pi in zip(qs, p)}
    b_scores = {q: list(rng.binomial(1, min(1.0, pi + 0.15), 8).astype(float)) for q, pi in zip(qs, p)}
    a_scores[qs[0]] = [None] * 4                     # every repeat of one question failed in A
    b_scores[qs[1]] = [None, 1.0, 1.0, None, 1.0, 1.0, 1.0, 1.0]  # two failed repeats in B
    ra = write_run(tmp_path / "A", {"math_500": a_scores, "aime24": {q: [0.0] for q in ids(30)}})
    rb = write_run(tmp_path / "B", {"math_500": b_scores, "gpqa_diamond": {q: [1.0] for q in ids(30)}})
    res = compare_runs(ra, rb, seed=3, resamples=2000)
    overall = res.main_rows()[0]
    assert (overall.benchmark, overall.subset) == ("math_500", "OVERALL")
    assert overall.result.n == 119 and overall.result.test == PERMUTATION_MC
    exp_b = np.mean([np.mean([x for x in b_scores[q] if x is not None]) for q in qs[1:]])
    assert overall.result.mean_b == pytest.approx(exp_b)
    assert overall.result.significant and overall.result.ci_low > 0
    assert res.skipped == ["aime24 (only in A)", "gpqa_diamond (only in B)"]
    text = "\n".join(res.notes)
    assert "math_500: 4 failed samples of A left out" in text
    assert "math_500: 2 failed samples of B left out" in text
    assert "1 question without a graded sample in one of the runs left out" in text
    assert "repeats per question differ (A: 4, B: 6-8)" in text
    assert all(r.benchmark != "ALL" for r in res.rows)  # one benchmark paired: no pooled row
    # reproducible with the seed, through JSON
    assert compare_runs(ra, rb, seed=3, resamples=2000).to_dict() == res.to_dict()
    out = compare_text(res)
    assert "skipped: aime24 (only in A)" in out and "note: math_500: 4 failed samples of A" in out


def test_pooled_row_over_benchmarks(tmp_path):
    a1, b1 = binary_pair(100, 20, 2, seed=5)
    a2, b2 = binary_pair(60, 1, 1, seed=6)
    ra = write_run(tmp_path / "A", {"math_500": dict(zip(ids(100), ([x] for x in a1))),
                                    "gpqa_diamond": dict(zip(ids(60), ([x] for x in a2)))})
    rb = write_run(tmp_path / "B", {"math_500": dict(zip(ids(100), ([x] for x in b1))),
                                    "gpqa_diamond": dict(zip(ids(60), ([x] for x in b2)))})
    res = compare_runs(ra, rb)
    main = {r.benchmark: r.result for r in res.main_rows()}
    assert set(main) == {"math_500", "gpqa_diamond", "ALL"}
    assert (main["ALL"].n, main["ALL"].b_only, main["ALL"].a_only) == (160, 21, 3)
    assert main["gpqa_diamond"].significant is False and main["math_500"].significant is True


def test_html_section_escapes_everything(tmp_path):
    evil = "<script>alert(1)</script>"
    qs = ids(30)
    subsets = {q: [f"{evil} subset"] for q in qs}
    a, b = binary_pair(30, 6, 0, seed=2)
    ra = write_run(tmp_path / "A", {f"{evil}bench": {q: [x] for q, x in zip(qs, a)}}, model="<img src=x onerror=1>",
                   subsets=subsets)
    rb = write_run(tmp_path / "B", {f"{evil}bench": {q: [x] for q, x in zip(qs, b)}}, model="tuned", subsets=subsets)
    res = compare_runs(ra, rb)
    page = compare_section_html(res)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;bench" in page and "&lt;img src=x onerror=1&gt;" in page
    assert page.count("<tr") == 1 + len(res.rows)
    assert 'class="pill ok"' in page  # 6 vs 0 discordant: p = 0.031
    # runs that cannot be paired: the section says why, escaped, and the page can still be written
    rc = write_run(tmp_path / "C", {f"{evil}bench": {q: [1.0] for q in qs[:10]}})
    refused = compare_section_for_runs(ra, rc)
    assert "Not computed: cannot pair &lt;script&gt;" in refused and "<script>" not in refused

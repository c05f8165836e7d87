"""``lmgauge compare DIR_A DIR_B``: is the difference between two runs real? Two eval runs get
paired tests per benchmark and subset (lmgauge.eval.compare), two perf runs the B/A ratio of
every metric per level with confidence intervals and regression gates (lmgauge.perf.compare);
docs/compare.md."""
from __future__ import annotations

import sys

import click

# numpy/scipy are imported only when the command runs: `lmgauge --help` lists this command
RESAMPLES = 10_000


@click.command("compare")
@click.argument("dir_a", metavar="DIR_A")
@click.argument("dir_b", metavar="DIR_B")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Also write the result as JSON to FILE ('-' for stdout only).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level; the interval is the matching (1 - alpha) CI.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutation and bootstrap resampling.")
@click.option("--resamples", type=click.IntRange(min=100), default=None,
              help="Random sign flips and bootstrap resamples (default 10000 for eval runs, 1000 for perf runs).")
@click.option("--fail-if", "fail_if", default=None, metavar="GATES",
              help="Perf runs: exit 5 when the CI shows a change beyond a threshold, e.g. 'ttft_p99>+10%,output_tps<-5%' "
                   "(B's ttft_p99 more than 10% above A's, output_tps more than 5% below); naming metric and level.")
def compare(dir_a: str, dir_b: str, json_path: str | None, alpha: float, seed: int, resamples: int | None,
            fail_if: str | None) -> None:
    """Is B really better than A? Two eval runs of the same questions, or two perf runs of the
    same workload.

    \b
    lmgauge compare runs/eval-base runs/eval-tuned
    lmgauge compare A B --json ab.json --alpha 0.01
    lmgauge compare runs/perf-vllm runs/perf-sglang
    lmgauge compare runs/perf-main runs/perf-pr --fail-if "ttft_p99>+10%,output_tps<-5%"

    Eval, single-repeat runs: exact McNemar test and Newcombe interval; repeated sampling:
    sign-flip permutation test and paired bootstrap interval on per-question means. Perf: B/A
    of every metric per shared level, with a CI from the trials (--trials) or a bootstrap over
    requests.
    """
    import orjson

    from ..errors import ConfigError, DataError
    from ..runfolder import load_run

    ra, rb = load_run(dir_a), load_run(dir_b)
    kinds = {ra.kind, rb.kind}
    if kinds - {"eval", "perf"}:
        other = ra if ra.kind not in ("eval", "perf") else rb
        raise DataError(f"{other.path} is a {other.kind} folder; lmgauge compare takes two eval or two perf run folders")
    if len(kinds) > 1:
        def a(kind: str) -> str:
            return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
        raise DataError(f"{rb.path} is {a(rb.display_kind)} run and {ra.path} is {a(ra.display_kind)} run: "
                        "lmgauge compare takes two eval run folders or two perf run folders")
    if ra.kind == "perf":
        from ..perf.compare import DEFAULT_RESAMPLES, compare_perf_runs

        result = compare_perf_runs(ra, rb, alpha=alpha, seed=seed, resamples=resamples or DEFAULT_RESAMPLES,
                                   gates=fail_if)
        text = result.text()
    else:
        if fail_if:
            raise ConfigError("--fail-if gates perf comparisons", "drop --fail-if for eval runs")
        from .compare import compare_runs, compare_text

        result = compare_runs(ra, rb, alpha=alpha, seed=seed, resamples=resamples or RESAMPLES)
        text = compare_text(result)
    data = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    if json_path == "-":
        click.echo(data.decode())
    else:
        click.echo(text)
        if json_path:
            from ..files import atomic_write

            try:
                atomic_write(json_path, data + b"\n")
            except OSError as exc:
                raise DataError(f"cannot write {json_path}: {exc.strerror or exc}", "pass a writable file path to --json") from None
            click.echo(f"json: {json_path}")
    fired = result.fired() if ra.kind == "perf" else []
    if fired:
        for g in fired:
            click.echo(f"lmgauge: regression: {g.line(result.confidence)} (gate {g.gate.text})", err=True)
        sys.exit(5)

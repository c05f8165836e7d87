"""``lmgauge compare DIR_A DIR_B``: is the difference between two eval runs real? Paired tests
per benchmark and subset (docs/compare.md)."""
from __future__ import annotations

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
@click.option("--resamples", type=click.IntRange(min=100), default=RESAMPLES, show_default=True,
              help="Random sign flips and bootstrap resamples (repeated-sampling runs).")
def compare(dir_a: str, dir_b: str, json_path: str | None, alpha: float, seed: int, resamples: int) -> None:
    """Paired significance of B - A, question by question, for two eval runs of the same questions.

    \b
    lmgauge compare runs/eval-base runs/eval-tuned
    lmgauge compare A B --json ab.json --alpha 0.01

    Single-repeat runs: exact McNemar test and Newcombe interval. Repeated sampling:
    sign-flip permutation test and paired bootstrap interval on per-question means.
    """
    import orjson

    from ..errors import DataError
    from ..files import atomic_write
    from .compare import compare_runs, compare_text

    result = compare_runs(dir_a, dir_b, alpha=alpha, seed=seed, resamples=resamples)
    data = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    if json_path == "-":
        click.echo(data.decode())
        return
    click.echo(compare_text(result))
    if json_path:
        try:
            atomic_write(json_path, data + b"\n")
        except OSError as exc:
            raise DataError(f"cannot write {json_path}: {exc.strerror or exc}", "pass a writable file path to --json") from None
        click.echo(f"json: {json_path}")

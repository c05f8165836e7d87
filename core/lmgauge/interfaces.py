"""Base classes a plugin subclasses. See hookspecs.py for how each is registered."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Sequence

from .types import Completion, GenerationRequest, PerfRecord, Sample, Score


class Benchmark:
    """An eval benchmark.

    Subclasses set ``name`` and implement ``load`` and ``score``. ``description`` is shown by
    ``lmgauge plugins``. ``default_max_tokens`` is a hint used when the user gives none.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def load(self, path: str | None = None) -> list[Sample]:
        """Return every question. ``path`` is a local file the user gave instead of the
        default source; raise :class:`lmgauge.errors.DataError` with a one-line fix when the
        data cannot be had (e.g. offline, gated)."""
        raise NotImplementedError

    def score(self, sample: Sample, completion: Completion) -> Score:
        """Grade one completion. Runs in a worker process; must not rely on global state set
        up in the parent other than what pickling the benchmark carries."""
        raise NotImplementedError


@dataclass
class BackendConfig:
    """Everything a backend is constructed with.

    ``model`` is the served model name (openai) or a path/alias (in-process backends).
    ``options`` holds values of the backend's own ``options``. ``api_key`` is a secret: never
    log it.
    """

    model: str
    base_url: str | None = None
    api_key: str | None = None
    api: str = "chat"  # "chat" | "completions"
    headers: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 30.0
    read_timeout: float = 600.0
    verify_tls: bool = True
    options: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Generates text. One instance per run; used from one asyncio event loop.

    Lifecycle: ``await start()`` (connect, load weights, check the model exists: raise
    :class:`lmgauge.errors.BackendError` with a clear line if not), then any number of
    ``generate`` / ``stream`` calls, concurrently, then ``await close()``.

    ``supports_n`` tells the eval runner it may ask for ``params.n > 1`` in one request;
    otherwise repeats become separate requests. ``load_time_s`` is set by ``start`` for
    in-process backends (reported apart from TTFT).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []  # click.Option objects, values land in config.options
    process_local: ClassVar[bool] = False  # holds the model in this process: no perf --workers

    def __init__(self, config: BackendConfig):
        self.config = config
        self.supports_n = False
        self.load_time_s: float | None = None

    async def start(self) -> None:
        return None

    async def detect_n_support(self) -> bool:
        """Called by the eval runner before a run with repeats: find out (e.g. by a tiny
        probe request) whether ``params.n > 1`` works, set and return ``supports_n``."""
        return self.supports_n

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Return ``request.params.n`` completions, or raise BackendError
        (``retryable=True`` for transient failures)."""
        raise NotImplementedError

    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        """Send one streaming request and fill ``record`` in place: ``sent``,
        ``first_token``, ``first_content``, ``chunk_times``/``chunk_tokens``, ``end``, token
        counts, ``success``/``error``. Never raises for a failed request: it records the
        reason in ``record.error``."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int | None:
        """Token count of ``text`` under the model's tokenizer, if the backend knows it."""
        return None

    async def close(self) -> None:
        return None


class PerfDataset:
    """A perf prompt source. Constructed with the perf options (a dict: ``dataset_path``,
    ``tokenizer``, prompt length bounds, ``prefix_length``, ``min_tokens``, ``max_tokens``,
    ``api``, ``model``, ...). ``requests(count)`` yields ``count`` requests (cycling its
    source when it has fewer)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any]):
        self.options = options

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        raise NotImplementedError


class Exporter:
    """Sends a finished run folder somewhere. ``export(run_dir, options)`` where ``options``
    holds ``export_path`` and the exporter's own settings. Raise
    :class:`lmgauge.errors.LmgaugeError` with a clear line on failure."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def export(self, run_dir: str, options: dict[str, Any]) -> str | None:
        """Export; return a short description of where it went (shown to the user)."""
        raise NotImplementedError


class Metric:
    """An eval metric computed per question from its repeated results, averaged over
    questions.

    ``per_question(values, extracted, k)`` receives one question's score values (one per
    repeat, in repeat order), the extracted answers, and ``k`` (= number of repeats).
    ``label(k)`` is the name shown in reports (e.g. ``"pass@5"``). ``default`` metrics are
    computed when the user names none with ``--metric``; ``min_repeats`` hides a metric that
    says nothing new below that many repeats.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default: ClassVar[bool] = False
    min_repeats: ClassVar[int] = 1

    def label(self, k: int) -> str:
        return self.name

    def per_question(self, values: Sequence[float], extracted: Sequence[str | None], k: int) -> float:
        raise NotImplementedError


__all__ = ["Benchmark", "Backend", "BackendConfig", "PerfDataset", "Exporter", "Metric",
           "Sample", "Score", "Completion", "GenerationRequest", "PerfRecord"]

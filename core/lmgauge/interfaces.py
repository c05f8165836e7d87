"""Base classes a plugin subclasses. See hookspecs.py for how each is registered.

Every base class is an :class:`abc.ABC`: a plugin that leaves an abstract method out is
refused when it registers (one line naming its distribution), not half-way through a run.

Options: every family may declare its own command-line options as a class attribute
``options = [click.Option(["--acme-flag", "acme_flag"], ...)]``. ``lmgauge eval``, ``lmgauge
perf``, ``lmgauge export``, ``--config FILE.yaml`` and ``lmgauge.evaluate(**kwargs)`` accept
them, checked by the option's click type on every path, and the values arrive under the
option's parameter name:

- a backend reads ``self.config.options["acme_flag"]``;
- a benchmark, perf dataset or metric reads ``self.options["acme_flag"]`` (the core sets
  ``options`` on the object it uses; the class attribute holds the declarations);
- an exporter reads ``options["acme_flag"]`` in ``export(run_dir, options)``.

A plugin receives every option it declared: the user's value, else the option's default.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from .types import Completion, GenerationParams, GenerationRequest, PerfRecord, Sample, Score, Session

if TYPE_CHECKING:  # pragma: no cover
    from .tokenizers import Tokenizer


class Benchmark(abc.ABC):
    """An eval benchmark. Register an instance (or the class: it is instantiated without
    arguments).

    Subclasses set ``name`` and implement ``load`` and ``score``. ``description`` is shown by
    ``lmgauge plugins``. ``judge_kind`` (``"math"`` or ``"mcq"``) picks the judge prompt when an
    LLM judge grades this benchmark. The core may use a copy of the registered object under
    another name (``--benchmark algebra=custom_math:FILE``): use ``self.name`` for
    :attr:`Sample.benchmark`, never a constant.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []
    judge_kind: ClassVar[str | None] = None

    @abc.abstractmethod
    def load(self, path: str | None = None) -> list[Sample]:
        """Return every question. ``path`` is a local file the user gave instead of the
        default source; raise :class:`lmgauge.errors.DataError` with a one-line fix when the
        data cannot be had (e.g. offline, gated)."""

    @abc.abstractmethod
    def score(self, sample: Sample, completion: Completion) -> Score:
        """Grade one completion. Runs in a worker process: it must not rely on global state set
        up in the parent other than what pickling the benchmark carries."""


@dataclass
class BackendConfig:
    """Everything a backend is constructed with.

    ``model`` is the served model name (openai) or a path/alias (in-process backends).
    ``base_url`` is the server URL as the user gave it (``--base-url`` for eval, ``--url`` for
    perf); the backend decides what it accepts. ``endpoints`` lists every URL when the flag was
    given several times (``base_url`` is the first); a backend that serves one endpoint refuses
    more in one line. ``options`` holds the values of the backend's own ``options``.
    ``api_key`` is a secret: never log it.
    """

    model: str
    base_url: str | None = None
    endpoints: list[str] = field(default_factory=list)
    api_key: str | None = None
    api: str | None = None  # None: the backend decides (e.g. from the URL)
    connect_timeout: float = 30.0
    read_timeout: float = 600.0
    options: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """Generates text. Register the class; one instance per run, used from one asyncio event
    loop.

    Lifecycle: ``await start()`` (connect, load weights, check the model exists: raise
    :class:`lmgauge.errors.BackendError` with a clear line if not), then any number of
    ``generate`` / ``stream`` calls, concurrently, then ``await close()``.

    ``supports_n`` tells the eval runner it may ask for ``params.n > 1`` in one request;
    otherwise repeats become separate requests. ``load_time_s`` is set by ``start`` for
    in-process backends (reported apart from TTFT). ``process_local`` backends hold the model in
    this process (no perf ``--workers``). ``api`` is the endpoint kind the backend serves
    (``chat``, ``completions``, ...), known once it is constructed; perf datasets see it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []
    process_local: ClassVar[bool] = False
    default: ClassVar[bool] = False  # the backend used when --backend is not given

    def __init__(self, config: BackendConfig):
        self.config = config
        self.supports_n = False
        self.load_time_s: float | None = None
        self.api: str = config.api or "chat"
        self.run_tokenizer: Tokenizer | None = None

    async def start(self) -> None:
        return None

    async def detect_n_support(self) -> bool:
        """Called by the eval runner before a run with repeats: find out (e.g. by a tiny
        probe request) whether ``params.n > 1`` works, set and return ``supports_n``."""
        return self.supports_n

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> list[Completion]:
        """Return ``request.params.n`` completions, or raise BackendError
        (``retryable=True`` for transient failures)."""

    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        """Send one streaming request and fill ``record`` in place: ``sent``,
        ``first_token``, ``first_content``, ``chunk_times``/``chunk_tokens``, ``end``, token
        counts, ``success``/``error``. Never raises for a failed request: it records the
        reason in ``record.error``."""
        from .errors import ConfigError

        raise ConfigError(f"the {self.name} backend cannot stream, so it cannot run lmgauge perf")

    def check_request(self, request: GenerationRequest) -> None:
        """Raise a one-line ConfigError for a request this backend's endpoint cannot take (perf
        checks the first request of a run before it starts). The default accepts everything."""
        return None

    def own_tokenizer(self) -> Tokenizer | None:
        """The model's own tokenizer, when the backend holds one (in-process backends). perf
        uses it for prompt lengths and token counts when no ``--tokenizer`` is given."""
        return None

    def use_tokenizer(self, tokenizer: Tokenizer | None) -> None:
        """perf hands the run's tokenizer over before the first request; it counts tokens
        the server does not report (see :meth:`count_tokens`)."""
        self.run_tokenizer = tokenizer

    def count_tokens(self, text: str) -> int | None:
        """Token count of ``text`` under the run's tokenizer, if there is one."""
        return self.run_tokenizer.count(text) if self.run_tokenizer is not None else None

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Per-endpoint counts of a backend that spreads requests over several servers (the
        openai backend with several ``--base-url``): one dict per endpoint with ``url``,
        ``requests``, ``ok``, ``failures``, ``parked`` (times), ``parked_s``, ``latency_mean_s``,
        ``latency_max_s``. The eval runner writes them into report.json (``endpoints``)."""
        return []

    async def close(self) -> None:
        return None


@dataclass
class RequestSettings:
    """What every request of a perf run shares (``lmgauge perf`` flags), as a perf dataset sees
    it. ``api`` is the endpoint kind (``chat``, ``completions``, ...); ``dataset_path`` is
    ``--dataset-path``."""

    model: str = ""
    api: str = "chat"
    max_tokens: int | None = None
    min_tokens: int | None = None
    temperature: float | None = None
    extra_args: dict[str, Any] = field(default_factory=dict)
    stream: bool = True
    seed: int = 0
    dataset_path: str | None = None

    def params(self, **overrides: Any) -> GenerationParams:
        """The sampling parameters of a request: ``--min-tokens`` is sent the way vLLM expects
        (``min_tokens`` and ``ignore_eos``, so the output length is exact)."""
        extra = dict(self.extra_args)
        if self.min_tokens:
            extra.setdefault("min_tokens", int(self.min_tokens))
            extra.setdefault("ignore_eos", True)
        values: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature,
                                  "extra_body": extra, "stream": self.stream}
        values.update(overrides)
        return GenerationParams(**values)


class PerfDataset(abc.ABC):
    """A perf prompt source. Register the class; lmgauge constructs it with its own option
    values (``self.options``), the run's :class:`RequestSettings` (``self.settings``) and the
    run's tokenizer (``self.tokenizer``, or ``None``).

    ``requests(count)`` yields ``count`` requests (cycling its source when it has fewer). It
    must be deterministic for a given ``settings.seed``: ``--workers`` processes rebuild the
    same list and each takes its share. ``needs_tokenizer`` asks for the default tokenizer
    when the user gives none.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []
    default: ClassVar[bool] = False  # the dataset used when --dataset is not given
    needs_tokenizer: ClassVar[bool] = False
    #: requests carry their own send offsets (GenerationRequest.at, trace replay): the run is one
    #: open-loop level at those offsets
    timed: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any], settings: RequestSettings | None = None,
                 tokenizer: Tokenizer | None = None):
        self.options = options
        self.settings = settings or RequestSettings()
        self.tokenizer = tokenizer

    def check(self) -> None:
        """Raise a one-line ConfigError/DataError for bad options or files. Called before the
        run folder is created; the default builds the first request."""
        next(iter(self.requests(1)), None)

    @abc.abstractmethod
    def requests(self, count: int) -> Iterator[GenerationRequest | Session]:
        """Yield ``count`` requests, or ``count`` :class:`lmgauge.types.Session` objects
        (multi-turn: ``--number`` then counts sessions, and each next turn is sent with the whole
        history, the server's own answers included)."""


class Exporter(abc.ABC):
    """Sends a finished run folder somewhere. Register an instance or the class.
    ``export(run_dir, options)``: ``options`` holds ``export_path`` and the values of the
    exporter's own ``options``. Raise :class:`lmgauge.errors.LmgaugeError` with a clear line on
    failure; never write to the run's own files."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []

    @abc.abstractmethod
    def export(self, run_dir: str, options: dict[str, Any]) -> str | None:
        """Export; return a short description of where it went (shown to the user)."""


class Metric(abc.ABC):
    """An eval metric computed per question from its repeated results, averaged over
    questions. Register an instance (or the class).

    ``per_question(values, extracted, k)`` receives one question's score values (one per
    repeat, in repeat order), the extracted answers, and ``k`` (= number of repeats).
    ``label(k)`` is the name shown in reports (e.g. ``"pass@5"``). ``default`` metrics are
    computed when the user names none with ``--metric``; ``min_repeats`` hides a metric that
    says nothing new below that many repeats.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []
    default: ClassVar[bool] = False
    min_repeats: ClassVar[int] = 1

    def label(self, k: int) -> str:
        return self.name

    @abc.abstractmethod
    def per_question(self, values: Sequence[float], extracted: Sequence[str | None], k: int) -> float:
        """The metric's value for one question."""


#: the base class of each family, by family name (as used by the plugin manager)
BASES: dict[str, type] = {"benchmarks": Benchmark, "backends": Backend, "datasets": PerfDataset,
                          "exporters": Exporter, "metrics": Metric}
#: families registered as classes only (lmgauge constructs them with the run's settings)
CLASS_ONLY = ("backends", "datasets")

__all__ = ["Benchmark", "Backend", "BackendConfig", "PerfDataset", "RequestSettings", "Exporter", "Metric",
           "Sample", "Score", "Completion", "GenerationRequest", "GenerationParams", "PerfRecord", "BASES",
           "CLASS_ONLY"]

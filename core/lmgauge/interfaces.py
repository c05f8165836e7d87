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
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

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
    #: runs model-written code: the core sets ``self.sandbox`` (a :class:`Sandbox`) on the object it uses
    needs_sandbox: ClassVar[bool] = False
    sandbox: Any = None

    @abc.abstractmethod
    def load(self, path: str | None = None) -> list[Sample]:
        """Return every question. ``path`` is a local file the user gave instead of the
        default source; raise :class:`lmgauge.errors.DataError` with a one-line fix when the
        data cannot be had (e.g. offline, gated)."""

    @abc.abstractmethod
    def score(self, sample: Sample, completion: Completion) -> Score:
        """Grade one completion. Runs in a worker process: it must not rely on global state set
        up in the parent other than what pickling the benchmark carries."""

    def sample_view(self, record: Any) -> list[dict[str, Any]]:
        """Extra blocks the report page and ``lmgauge serve`` show for one journal record
        (a :class:`lmgauge.runfolder.SampleRecord`) of this benchmark, as plain data; the
        views render them as untrusted text. Each block is one of:

        - ``{"kind": "table", "title": str, "columns": [str, ...], "rows": [[value, ...], ...]}``
        - ``{"kind": "text", "title": str, "text": str}`` (monospaced, e.g. captured output)
        - ``{"kind": "fields", "title": str, "items": [[label, value], ...]}``

        A cell may be ``{"text": str, "status": "pass" | "fail" | "warn"}`` to be coloured.
        The default shows nothing beyond the question, answer and verdict every sample has
        (e.g. a code benchmark shows each test's outcome from ``record.grade_info``)."""
        return []


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
    (``chat``, ``completions``, ...), known once it is constructed; perf datasets see it;
    ``generates_text`` says whether that kind generates text. A failed ``stream`` request is
    marked with :meth:`lmgauge.types.PerfRecord.fail` and a typed kind
    (:data:`lmgauge.types.FAILURE_KINDS`).
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
        #: the endpoint generates text (TTFT, ITL, output tokens mean something); False for
        #: endpoints that answer with vectors or scores (embeddings, rerank …)
        self.generates_text: bool = True
        #: what a request of an endpoint without text counts in ``PerfRecord.inputs`` (e.g.
        #: "inputs" embedded, "documents" scored); None for text endpoints
        self.input_unit: str | None = None
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


class PerfMetric(abc.ABC):
    """A perf figure, declared once: this declaration drives its per-request computation,
    its aggregation over a level, its perf.sqlite column, its summary.json key, the terminal
    tables, the report's views, its ``--sla`` objective name and the exporters. Register an
    instance (or the class) with ``register_perf_metrics``; lmgauge's own metrics
    (lmgauge.perf.builtin_metrics) are registered the same way.

    - ``name``: what ``--sla`` calls it. A per-request metric is named with a statistic
      (``ttft_p99``, ``ttft_mean``, ``ttft_max``); a level metric by itself (``rps``).
      ``aliases`` are other names ``--sla`` accepts (``e2el`` for ``latency``).
    - ``key``: its summary.json field and, for a stored per-request metric, its perf.sqlite
      column (default: ``name``).
    - ``unit``: ``"s"`` (durations: ``--sla`` values take ``ms`` or ``s``, a bare number is
      milliseconds), or any label (``tokens``, ``tok/s``, ``req/s``, ``share``).
    - ``kind``: ``"request"`` (:meth:`per_request` gives a value, or a list of values, per
      request; the level gets a :class:`lmgauge.runfolder.Distribution` of them) or
      ``"level"`` (:meth:`level` gives one number per level).
    - ``over``: a per-request metric over the successful requests (``"ok"``) or all
      (``"all"``).
    - ``endpoints``: ``"text"`` (only endpoints that generate text: chat, completions,
      responses …), ``"no_text"`` (embeddings, rerank, score …) or ``"all"``.
    - ``stored``: a per-request metric keeps its value per request in perf.sqlite (``is_list``:
      a list per request, stored as JSON, e.g. ITL); ``omit_empty``: a level where no request
      has a value leaves the metric out (embeddings' ``inputs`` on a chat level).
    - ``higher_is_better``: for comparisons and regression gates; ``directional`` False for a
      figure of the workload (token counts) that is neither better nor worse.
    - ``columns``: per profile (``"text"``/``"no_text"``) the level's percentile table column,
      ``(header, digits, mean digits)``; ``summary``: per profile the sweep table's columns,
      ``((stat or None, header, digits), ...)``; ``order`` / ``summary_order`` place them.

    :meth:`per_request` receives the :class:`lmgauge.types.PerfRecord` and a
    :class:`lmgauge.runfolder.RequestRow` holding the values of the metrics computed before
    this one (built-in metrics first: ``row.value("ttft_s")``, ``row.value("latency_s")``).
    :meth:`level` receives a :class:`lmgauge.perf.metrics.LevelInput` (the rows, the wall
    time, the level's figures so far).
    """

    name: ClassVar[str] = ""
    key: ClassVar[str] = ""
    #: a short human name for chart titles and legends (default: the name)
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []
    unit: ClassVar[str] = ""
    kind: ClassVar[str] = "request"
    over: ClassVar[str] = "ok"
    endpoints: ClassVar[str] = "text"
    stored: ClassVar[bool] = False
    is_list: ClassVar[bool] = False
    omit_empty: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = False
    #: a change has a direction (better/worse); False for figures that describe the workload
    #: (token counts, inputs per request): comparisons then say "higher"/"lower"
    directional: ClassVar[bool] = True
    aliases: ClassVar[tuple[str, ...]] = ()
    columns: ClassVar[dict[str, tuple[str, int, int]]] = {}
    summary: ClassVar[dict[str, tuple[tuple[str | None, str, int], ...]]] = {}
    order: ClassVar[int] = 100
    summary_order: ClassVar[int] = 100
    #: the name tracker exporters (swanlab, wandb, mlflow) log a level metric under
    #: (default: ``name``); per-request metrics are logged as ``NAME/STAT``
    export_name: ClassVar[str] = ""

    @property
    def summary_key(self) -> str:
        """The summary.json key (``key``, else ``name``)."""
        return self.key or self.name

    def applies(self, generates_text: bool) -> bool:
        return self.endpoints == "all" or (self.endpoints == "text") == bool(generates_text)

    def per_request(self, record: PerfRecord, row: Any) -> float | list[float] | None:
        """A request's value (``kind = "request"``); ``None`` when it has none."""
        return None

    def level(self, level: Any) -> float | None:
        """The level's value (``kind = "level"``)."""
        return None

    def format(self, value: float | None, digits: int) -> str:
        """How a value is written in the terminal tables."""
        if value is None or (isinstance(value, float) and value != value):
            return "-"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)


#: what an :class:`Execution` ended as. Every status but ``"error"`` is a verdict on the
#: program (a timeout or a memory kill is the program's fault); ``"error"`` means the sandbox
#: itself failed to run it: no verdict, the sample is a grading error that ``regrade`` retries.
EXECUTION_STATUSES = ("ok", "exit", "timeout", "memory", "output", "signal", "error")


@dataclass
class Limits:
    """What one execution may use. ``timeout_s`` is wall-clock time; ``cpu_s`` CPU seconds
    (default ``timeout_s + 1``); ``memory_mb`` bounds each process's address space and the
    execution's total resident memory; ``processes`` counts processes and threads at once;
    ``file_size_mb`` the largest file it may write, ``disk_mb`` its whole private writable space
    (its ``/tmp`` and working folder); ``open_files`` its file descriptors. Output beyond
    ``stdout_bytes`` stops the program (status ``"output"``); stderr beyond ``stderr_bytes`` is
    dropped."""

    timeout_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 4096
    processes: int = 64
    file_size_mb: int = 64
    disk_mb: int = 256
    open_files: int = 256
    stdout_bytes: int = 1 << 20
    stderr_bytes: int = 64 << 10


@dataclass
class ExecutionRequest:
    """One program to run: ``files`` (relative path → text or bytes) written into an empty
    private working folder, then ``argv`` run there with ``stdin``. ``argv[0] == "python"``
    means the sandbox's Python 3 interpreter."""

    files: dict[str, str | bytes]
    argv: Sequence[str]
    stdin: str | bytes | None = None
    limits: Limits | None = None


@dataclass
class Execution:
    """How one execution ended (plain data, so that a remote executor can send it back).

    ``status`` is one of :data:`EXECUTION_STATUSES`: ``ok`` (exit code 0), ``exit`` (another
    exit code), ``timeout`` (wall-clock or CPU limit), ``memory``, ``output`` (stdout limit),
    ``signal`` (killed by a signal: a crash), ``error`` (the sandbox failed: no verdict).
    ``stdout``/``stderr`` are decoded UTF-8 (undecodable bytes replaced), capped by the
    limits (``*_truncated`` says so). ``reason`` is one line for people."""

    status: str
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_s: float = 0.0
    cpu_s: float | None = None
    max_rss_mb: float | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def sandbox_failed(self) -> bool:
        """The sandbox, not the program, failed: there is no verdict."""
        return self.status == "error"


class Sandbox(abc.ABC):
    """Runs untrusted (model-written) code. Register the class with ``register_sandboxes``;
    lmgauge constructs it with the values of its own ``options`` (``self.options``) and hands
    it to every benchmark of the run that declares ``needs_sandbox = True`` (as
    ``benchmark.sandbox``). ``default = True`` makes it the sandbox used without ``--sandbox``.

    It is pickled into grading worker processes with the benchmark, so it holds plain data
    (connection state, caches and locks are made lazily, per process). ``run`` is called from
    those processes, possibly from several threads; it never raises for anything the program
    does (a timeout, a crash, a memory kill are statuses) and returns ``status="error"`` when
    the sandbox itself fails. Every process the program started is gone when ``run`` returns.

    ``isolation()`` says, in one line, what protection is missing (``None``: fully isolated: no
    network, no host files but the read-only system and interpreter, no host processes, no
    environment of the run); ``lmgauge eval --sandbox-require-isolation`` refuses a sandbox that
    returns a line, otherwise lmgauge prints it as one warning. ``check()`` raises a one-line
    :class:`lmgauge.errors.ConfigError` when the sandbox cannot work at all (before the run).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[list] = []
    default: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    def check(self) -> None:
        return None

    def isolation(self) -> str | None:
        return None

    def describe(self) -> str:
        """A short label journaled with each result (e.g. ``"local (bubblewrap)"``)."""
        return self.name

    @abc.abstractmethod
    def run(self, files: dict[str, str | bytes], argv: Sequence[str], stdin: str | bytes | None = None,
            limits: Limits | None = None) -> Execution:
        """Run one program (see :class:`ExecutionRequest`) and report how it ended."""

    def run_many(self, requests: Sequence[ExecutionRequest], stop: Callable[[Execution], bool] | None = None,
                 budget_s: float | None = None) -> list[Execution]:
        """Run ``requests`` in order, stopping after the first execution for which ``stop`` is
        true; ``budget_s`` caps their total wall-clock time (an execution cut by it is a
        ``timeout``; the rest are not run). Returns the executions that ran. A remote executor
        may override this to send them in one batch."""
        import time

        out: list[Execution] = []
        start = time.monotonic()
        for req in requests:
            limits = req.limits or Limits()
            if budget_s is not None:
                left = budget_s - (time.monotonic() - start)
                if left <= 0:
                    break
                if left < limits.timeout_s:
                    from dataclasses import replace

                    limits = replace(limits, timeout_s=left)
            ex = self.run(req.files, req.argv, req.stdin, limits)
            out.append(ex)
            if ex.sandbox_failed or (stop is not None and stop(ex)):
                break
        return out


#: the base class of each family, by family name (as used by the plugin manager)
BASES: dict[str, type] = {"benchmarks": Benchmark, "backends": Backend, "datasets": PerfDataset,
                          "exporters": Exporter, "metrics": Metric, "perf_metrics": PerfMetric,
                          "sandboxes": Sandbox}
#: families registered as classes only (lmgauge constructs them with the run's settings)
CLASS_ONLY = ("backends", "datasets", "sandboxes")

__all__ = ["Benchmark", "Backend", "BackendConfig", "PerfDataset", "RequestSettings", "Exporter", "Metric", "PerfMetric",
           "Sample", "Score", "Completion", "GenerationRequest", "GenerationParams", "PerfRecord", "BASES",
           "CLASS_ONLY", "Sandbox", "Limits", "Execution", "ExecutionRequest", "EXECUTION_STATUSES"]

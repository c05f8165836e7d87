"""``PerfConfig``: everything ``lmgauge perf`` takes, as one typed object (the perf twin of
``EvalConfig``). Built from the command line, a ``--config FILE.yaml`` or a saved run's
config.yaml; plugin option values travel in ``options`` (options.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..config import Settings


@dataclass
class PerfConfig(Settings):
    url: str | None = None
    urls: list[str] = field(default_factory=list)  # every --url when several are given (url is the first)
    model: str = ""
    api_key: str | None = None
    backend: str | None = None  # None: the installed backend that declares itself the default
    concurrency: list[int] = field(default_factory=list)
    number: list[int] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    burstiness: float = 1.0
    duration: float | None = None
    ramp_up: str | None = None          # linear | exponential: one level whose rate moves from start to end
    ramp_up_start_rps: float | None = None
    ramp_up_end_rps: float | None = None
    warmup: int = 0
    stream: bool = True
    dataset: str | None = None  # None: the installed dataset that declares itself the default
    dataset_path: str | None = None
    prompt: str | None = None
    tokenizer: str | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    extra_args: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float = 30.0
    read_timeout: float = 600.0
    slo: str | None = None
    workers: int = 1
    seed: int = 0
    output: str | None = None
    api: str | None = None
    name: str | None = None
    log_every: int | None = None
    export: list[str] = field(default_factory=list)
    export_path: str | None = None
    server_metrics: str | None = None   # "" = the server's own /metrics
    sla: str | None = None
    sla_search: str | None = None
    sla_range: str | None = None
    sla_lower_bound: float | None = None
    sla_upper_bound: float | None = None
    sla_precision: float | None = None
    sla_params: Any = None
    sla_auto_tune: bool = False
    ray: bool = False
    replicas: int = 1
    gpus_per_replica: float | None = None
    ray_address: str | None = None
    trials: int | None = None           # --trials K: each level K times (None: once, no intervals)
    reset_cache: bool = False           # --reset-cache: the server's prefix-cache reset before each trial
    stop_on_saturation: bool = False    # --stop-on-saturation (lmgauge.perf.saturation)
    #: values of plugin-declared options, by parameter name
    options: dict[str, Any] = field(default_factory=dict)

    COMMAND = "perf"
    POSITIVE = ("connect_timeout", "read_timeout", "burstiness", "duration", "sla_precision")
    NON_NEGATIVE = ("warmup", "temperature")

    @classmethod
    def coerce(cls, data: dict[str, Any]) -> dict[str, Any]:
        url = data.get("url")
        if isinstance(url, (list, tuple)):  # --url given several times (or a list in --config)
            given = [str(u) for u in url if u]
            data["url"] = given[0] if given else None
            data["urls"] = given if len(given) > 1 else []
        return data

    def validate(self) -> None:
        for key in ("concurrency", "number", "rate"):
            value = getattr(self, key)
            if not isinstance(value, (list, tuple)):
                setattr(self, key, [value])
        if isinstance(self.export, str):
            self.export = [x.strip() for x in self.export.split(",") if x.strip()]
        if not self.model:
            raise ConfigError("no model given", "pass --model NAME")
        if self.min_tokens is not None and self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ConfigError(f"--min-tokens {self.min_tokens} is larger than --max-tokens {self.max_tokens}")
        if self.prompt is not None and not str(self.prompt).strip():
            raise ConfigError("--prompt is empty")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"--workers must be an integer ≥ 1, got {self.workers!r}")
        self._validate_ramp()
        if not isinstance(self.extra_args, dict):
            raise ConfigError("--extra-args must be a JSON object", 'e.g. --extra-args \'{"ignore_eos": true}\'')

    def _validate_ramp(self) -> None:
        given = [f for f, v in (("--ramp-up-start-rps", self.ramp_up_start_rps), ("--ramp-up-end-rps", self.ramp_up_end_rps))
                 if v is not None]
        if self.ramp_up is None:
            if given:
                raise ConfigError(f"{given[0]} needs --ramp-up linear|exponential")
            return
        if self.ramp_up not in ("linear", "exponential"):
            raise ConfigError(f"--ramp-up must be linear or exponential, got {self.ramp_up!r}")
        if len(given) < 2:
            raise ConfigError("--ramp-up needs --ramp-up-start-rps A and --ramp-up-end-rps B (requests per second)",
                              "e.g. --ramp-up linear --ramp-up-start-rps 1 --ramp-up-end-rps 20 --duration 60")
        for flag, v in (("--ramp-up-start-rps", self.ramp_up_start_rps), ("--ramp-up-end-rps", self.ramp_up_end_rps)):
            if not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"{flag} must be a positive number of requests per second, got {v!r}")
        if self.rate:
            raise ConfigError("--ramp-up and --rate both set the request rate", "drop --rate (the ramp sets it)")
        if len(self.concurrency) > 1:
            raise ConfigError("--ramp-up takes at most one --concurrency value (the cap on requests in flight)")

"""Run settings: the eval config dataclass, YAML config files, secret redaction."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

from .redaction import REDACTED, redact  # noqa: F401  (re-exported)


def resolve_api_key(value: str | None) -> str | None:
    """``--api-key`` wins, then ``LMGAUGE_API_KEY``, then ``OPENAI_API_KEY``."""
    return value or os.environ.get("LMGAUGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


def resolve_judge_api_key(value: str | None) -> str | None:
    """``--judge-api-key`` wins, then ``LMGAUGE_JUDGE_API_KEY``."""
    return value or os.environ.get("LMGAUGE_JUDGE_API_KEY") or None


def load_yaml(path: str, what: str = "config file") -> dict[str, Any]:
    """Read a YAML (or JSON) mapping; keys may use dashes or underscores."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {path} does not exist", "check the path")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {path} is not valid YAML{where}",
                          "fix the syntax (YAML or JSON)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of settings, not {type(data).__name__}",
                          "write one `key: value` per line")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


class Settings:
    """What EvalConfig and PerfConfig share: built from a flat mapping (flags, ``--config``,
    config.yaml) with unknown names refused in one line, and written back flat with plugin
    option values beside the core fields and the secrets (``SECRET_FIELDS``) dropped."""

    COMMAND = ""
    SECRET_FIELDS: tuple[str, ...] = ("api_key",)

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}  # type: ignore[arg-type]

    #: settings that must be positive numbers (> 0) / non-negative (≥ 0) when given
    POSITIVE: tuple[str, ...] = ()
    NON_NEGATIVE: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "settings"):
        unknown = sorted(set(data) - cls.keys())
        if unknown:
            raise ConfigError(f"unknown setting(s) in {source}: {', '.join(unknown)}",
                              f"see `lmgauge {cls.COMMAND} --help` for the names")
        data = cls.coerce(dict(data))
        cls._check_types(data, source)
        cfg = cls(**{k: v for k, v in data.items() if v is not None})
        cfg.validate()
        cfg._check_ranges()
        return cfg

    @classmethod
    def coerce(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Values written the way the command line takes them, turned into the field's type
        (e.g. ``dataset_path: aime24=FILE`` in a config file)."""
        return data

    @classmethod
    def _check_types(cls, data: dict[str, Any], source: str) -> None:
        """Every value has its field's type, whatever path it came by (a flag is checked by
        click; a --config file, a resumed config.yaml or ``lmgauge.evaluate(**kwargs)`` here):
        ``temperature: hot`` is one line, not a request the server refuses."""
        import typing

        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if value is None or key == "options":
                continue
            want = _accepts(hints.get(key))
            if want is None:
                continue
            items = value if isinstance(value, (list, tuple)) and list in want else [value]
            scalar = [t for t in want if t not in (list, dict)]
            ok = (isinstance(value, dict) and dict in want) or all(_is(v, scalar or want) for v in items)
            if isinstance(value, (list, tuple)) and list not in want:
                ok = False
            if not ok:
                raise ConfigError(f"{key} in {source} must be {_describe(want)}, got {value!r}",
                                  f"fix it (see `lmgauge {cls.COMMAND} --help`)")

    def _check_ranges(self) -> None:
        for key in self.POSITIVE:
            v = getattr(self, key)
            if v is not None and not v > 0:
                raise ConfigError(f"{key.replace('_', '-')} must be > 0, got {v!r}")
        for key in self.NON_NEGATIVE:
            v = getattr(self, key)
            if v is not None and not v >= 0:
                raise ConfigError(f"{key.replace('_', '-')} must be ≥ 0, got {v!r}")

    def validate(self) -> None:
        raise NotImplementedError

    def to_dict(self, secrets: bool = False) -> dict[str, Any]:
        """Flat settings: core fields and plugin option values side by side (what config.yaml
        and ``--config`` files hold). Secrets are dropped or redacted unless ``secrets``."""
        data = asdict(self)  # type: ignore[call-overload]
        data.update(data.pop("options"))
        if not secrets:
            for key in self.SECRET_FIELDS:
                data[key] = None
            data = redact(data)
        return data


_WORDS = {float: "a number", int: "an integer", str: "text", bool: "true or false", list: "a list",
          dict: "a mapping"}


def _accepts(hint: Any) -> set[type] | None:
    """The plain types a field annotation admits (``float | None`` → {float, int}; ``list[int]``
    → {list, int}); None when anything goes."""
    import typing

    if hint is None or hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out: set[type] = set()
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            got = _accepts(arg)
            if got is None:
                return None
            out |= got
        return out
    if origin in (list, tuple):
        args = typing.get_args(hint)
        inner = _accepts(args[0]) if args else None
        return None if inner is None else {list} | inner
    if origin is dict or hint is dict:
        return {dict}
    if hint is float:
        return {float, int}
    if isinstance(hint, type):
        return {hint}
    return None


def _describe(want: set[type]) -> str:
    scalar = {t for t in want if t not in (list, dict)}
    if float in scalar:
        scalar.discard(int)
    words = sorted(_WORDS.get(t, t.__name__) for t in scalar)
    text = " or ".join(words)
    if list in want:
        text = f"{text} or a list of them" if text else "a list"
    if dict in want:
        text = f"{text} or a mapping" if text else "a mapping"
    return text


def _is(value: Any, types: Any) -> bool:
    if isinstance(value, bool):
        return bool in types
    return any(isinstance(value, t) for t in types if t is not bool)


#: the settings that define an eval run's samples: ``--resume`` refuses to change them, and a
#: sweep run again reuses its folders only while they are the same
RUN_DEFINING = ("model", "backend", "benchmark", "repeats", "limit", "collection", "temperature",
                "top_p", "max_tokens", "seed", "extra_body", "system_prompt", "api", "dataset_path", "metric",
                "starts_thinking", "sweep")


def same_value(a: Any, b: Any) -> bool:
    """Two settings' values are the same (an int-valued float equals the int; None, [] and
    {} are all "not set")."""
    return _normal(a) == _normal(b)


def _normal(v: Any) -> Any:
    if v is None or v == [] or v == {} or v == ():
        return None
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def differing_setting(saved: dict[str, Any], given: dict[str, Any],
                      keys: tuple[str, ...] = RUN_DEFINING) -> tuple[str, Any, Any] | None:
    """The first of ``keys`` whose value differs between two flat settings mappings (a
    config.yaml and the settings of a new command), as (key, saved, given); None when equal."""
    for key in keys:
        if not same_value(saved.get(key), given.get(key)):
            return key, saved.get(key), given.get(key)
    return None


@dataclass
class EvalConfig(Settings):
    """Everything ``lmgauge eval`` / ``lmgauge.evaluate`` takes (flag names with underscores)."""

    backend: str | None = None  # None: the installed backend that declares itself the default
    model: str = ""
    base_url: list[str] = field(default_factory=list)
    api_key: str | None = None
    api: str | None = None  # the endpoint kind; None: the backend's default (chat)
    benchmark: list[str] = field(default_factory=list)
    repeats: int = 1
    concurrency: int = 32
    limit: int | None = None
    dataset_path: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    output: str | None = None
    resume: str | None = None
    collection: str | None = None
    metric: list[str] = field(default_factory=list)
    retries: int = 5
    retry_backoff: float = 1.0
    max_connection_failures: int | None = None  # None: 4 × concurrency, at least 8 (eval/runner.py)
    timeout: float = 3600.0
    connect_timeout: float = 30.0
    grading_workers: int | None = None
    starts_thinking: bool = False  # the chat template opens <think> (grading_pool.as_graded)
    # what token counts are made with (eval/lengths.py): a tiktoken name, tokenizer folder, .gguf or hub id;
    # None: the served model's own when it loads offline, else cl100k_base (marked approximate)
    tokenizer: str | None = None
    # --sweep KEY=V1,V2,... (repeatable: a grid); each variant is an eval run of its own (eval/sweep.py)
    sweep: list[str] = field(default_factory=list)
    # where model-written code runs (benchmarks with needs_sandbox; eval/sandboxing.py)
    sandbox: str | None = None  # None: the installed sandbox that declares itself the default (local)
    sandbox_require_isolation: bool = False
    export: list[str] = field(default_factory=list)
    export_path: str | None = None
    progress: bool = True
    # an LLM judge (eval/judge.py)
    judge_backend: str | None = None
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_api_key: str | None = None
    judge_mode: str = "fallback"
    judge_concurrency: int = 16
    # model replicas of an in-process backend as Ray actors (scale/replicas.py)
    replicas: int = 1
    gpus_per_replica: float | None = None
    ray_address: str | None = None
    #: values of plugin-declared options, by parameter name (options.py)
    options: dict[str, Any] = field(default_factory=dict)

    COMMAND = "eval"
    SECRET_FIELDS = ("api_key", "judge_api_key")
    POSITIVE = ("timeout", "connect_timeout", "grading_workers", "judge_concurrency", "max_connection_failures",
                "top_p")
    NON_NEGATIVE = ("temperature", "retry_backoff")

    @classmethod
    def coerce(cls, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("sweep"), str):  # one KEY=V1,V2 text, as --sweep takes it
            data["sweep"] = [data["sweep"]]
        dp = data.get("dataset_path")
        if isinstance(dp, (str, list)):  # NAME=PATH text(s), as --dataset-path takes them
            from .cli_common import parse_kv

            data["dataset_path"] = parse_kv([dp] if isinstance(dp, str) else [str(x) for x in dp], "dataset_path")
        return data

    def validate(self) -> None:
        if isinstance(self.base_url, str):
            self.base_url = [self.base_url]
        self.base_url = [u for u in (self.base_url or []) if u]
        if isinstance(self.benchmark, str):
            self.benchmark = [self.benchmark]
        if isinstance(self.metric, str):
            self.metric = [self.metric]
        if isinstance(self.export, str):
            self.export = [x for x in self.export.split(",") if x]
        if not self.model:
            raise ConfigError("no model given", "pass --model NAME (the served model name)")
        if not self.benchmark and not self.collection:
            raise ConfigError("no benchmark given", "pass --benchmark NAME (repeatable) or --collection FILE")
        for name, value, low in (("--repeats", self.repeats, 1), ("--concurrency", self.concurrency, 1),
                                 ("--retries", self.retries, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"--limit must be a positive integer, got {self.limit!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be ≥ 1, got {self.max_tokens}")
        if not isinstance(self.extra_body, dict):
            raise ConfigError("--extra-body must be a JSON object", 'e.g. --extra-body \'{"top_k": 20}\'')
        if self.judge_mode not in ("fallback", "always"):
            raise ConfigError(f"--judge-mode must be fallback or always, got {self.judge_mode!r}")
        if self.tokenizer is not None and (not isinstance(self.tokenizer, str) or not self.tokenizer.strip()):
            raise ConfigError(f"--tokenizer must name a tokenizer, got {self.tokenizer!r}",
                              "e.g. --tokenizer cl100k_base, a tokenizer folder, a .gguf file or a cached hub id")
        if self.sweep:
            from .eval.sweep import parse_sweeps

            parse_sweeps(self.sweep, self)  # a bad --sweep is one line now, not after a first variant
        if self.sandbox is not None and (not isinstance(self.sandbox, str) or not self.sandbox.strip()):
            raise ConfigError(f"--sandbox must be a sandbox plugin's name, got {self.sandbox!r}",
                              "see `lmgauge plugins` for the installed sandboxes (default: local)")
        if not isinstance(self.sandbox_require_isolation, bool):
            raise ConfigError(f"sandbox_require_isolation must be true or false, got {self.sandbox_require_isolation!r}")
        from .eval.sandboxing import carry_selection

        carry_selection(self)
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise ConfigError(f"--replicas must be an integer ≥ 1, got {self.replicas!r}")

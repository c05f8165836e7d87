"""``--replicas N``: N copies of an in-process backend (transformers, lmdeploy) as Ray actors.

``ReplicaBackend`` is a Backend: ``start()`` places N actors (SPREAD over the cluster's nodes;
``--gpus-per-replica`` GPUs each where the cluster has GPUs, default 1, else one CPU each),
each of which constructs and starts the real backend; ``generate`` and ``stream`` send each
request to the replica with the fewest requests in flight (ties in turn) and await the answer
without blocking the event loop; ``close()`` closes the backends and kills the actors.

A replica answers a request exactly as the backend alone would: the request (its seed
included) reaches the backend unchanged, so greedy and seeded answers are those of one
replica given the same request (the transformers backend seeds every output row from the
request's own seed, whatever it is batched with).

Perf: a replica fills the record with its own ``perf_counter`` stamps; they are moved onto
this process's clock (unchanged on the same machine: same boot id, same CLOCK_MONOTONIC;
elsewhere by the wall-clock offset). The Ray call itself falls before ``sent``: it counts as
queue delay, not TTFT.

A replica that dies (node lost, process killed) is taken out of rotation; its requests in
flight fail with ``replica lost: node IP (reason)`` (retryable for eval while another replica
lives).
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, ConfigError, LmgaugeError
from ..interfaces import Backend, BackendConfig
from ..types import Completion, GenerationRequest, PerfRecord
from .cluster import boot_id, connect, import_ray, node_info, short_reason

READY_TIMEOUT_S = 900.0  # placing the actors and loading every replica's weights
CLOSE_TIMEOUT_S = 60.0


@dataclass
class _Failure:
    """An LmgaugeError raised in a replica, carried back intact (hint, retryable, status)."""

    kind: str
    message: str
    hint: str | None
    retryable: bool
    status: int | None

    def error(self) -> LmgaugeError:
        from .. import errors

        cls = getattr(errors, self.kind, LmgaugeError)
        if issubclass(cls, BackendError):
            return cls(self.message, self.hint, retryable=self.retryable, status=self.status)
        return cls(self.message, self.hint)


def _failure(exc: LmgaugeError) -> _Failure:
    return _Failure(exc.__class__.__name__ if exc.__class__.__module__ == "lmgauge.errors" else "LmgaugeError",
                    exc.message, exc.hint, bool(getattr(exc, "retryable", False)), getattr(exc, "status", None))


class ReplicaActor:
    """One replica: the real backend, constructed and started inside a Ray actor."""

    def __init__(self, backend_name: str, config: BackendConfig):
        self.backend_name = backend_name
        self.config = config
        self.backend: Backend | None = None

    async def start(self) -> dict[str, Any] | _Failure:
        from ..plugins import get_manager

        try:
            self.backend = get_manager().get("backends", self.backend_name)(self.config)
            await self.backend.start()
        except LmgaugeError as exc:
            return _failure(exc)
        tok = self.backend.own_tokenizer()
        try:
            import pickle

            pickle.dumps(tok)
        except Exception:  # noqa: BLE001 - a tokenizer that cannot travel stays here
            tok = None
        return {**node_info(), "load_time_s": self.backend.load_time_s, "supports_n": self.backend.supports_n,
                "api": self.backend.api, "device": getattr(self.backend, "device", None), "tokenizer": tok,
                "clock": time.time() - time.perf_counter()}

    async def detect_n_support(self) -> bool:
        return await self.backend.detect_n_support()

    async def generate(self, request: GenerationRequest) -> list[Completion] | _Failure:
        try:
            return await self.backend.generate(request)
        except LmgaugeError as exc:
            return _failure(exc)

    async def stream(self, request: GenerationRequest, index: int) -> PerfRecord:
        record = PerfRecord(index=index)
        await self.backend.stream(request, record)
        return record

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close()


class ReplicaBackend(Backend):
    """N replicas of the backend ``backend_name`` as Ray actors (see the module docstring)."""

    name = "replicas"
    process_local = True  # perf --workers would copy N replicas per worker

    def __init__(self, backend_name: str, config: BackendConfig, replicas: int, gpus_per_replica: float | None = None,
                 address: str | None = None):
        super().__init__(config)
        if replicas < 1:
            raise ConfigError(f"--replicas must be ≥ 1, got {replicas}")
        import_ray("--replicas")  # a missing Ray is one line now, not after the run has begun
        self.backend_name = backend_name
        self.replicas = replicas
        self.gpus_per_replica = gpus_per_replica
        self.address = address
        self.actors: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self.inflight: list[int] = []
        self.served: list[int] = []      # requests answered per replica
        self.lost: dict[int, str] = {}   # replica -> why
        self._next = 0
        self._shift: list[float] = []
        self._tokenizer: Any = None
        self._ray: Any = None
        self._own = False

    async def start(self) -> None:
        t0 = time.perf_counter()
        ray, self._own = connect(self.address, "--replicas")
        self._ray = ray
        gpus = ray.cluster_resources().get("GPU", 0)
        if self.gpus_per_replica and not gpus:
            raise ConfigError(f"--gpus-per-replica {self.gpus_per_replica:g}: the Ray cluster has no GPUs",
                              "leave --gpus-per-replica out to run CPU replicas")
        per = (self.gpus_per_replica or 1) if gpus else 0
        if per and per * self.replicas > gpus:
            raise ConfigError(f"--replicas {self.replicas} x {per:g} GPUs needs {per * self.replicas:g} GPUs; "
                              f"the Ray cluster has {gpus:g}", "use fewer --replicas or --gpus-per-replica")
        resources = {"num_gpus": per} if per else {"num_cpus": 1}
        actor_cls = ray.remote(ReplicaActor)
        self.actors = [actor_cls.options(**resources, scheduling_strategy="SPREAD", max_restarts=0,
                                         max_task_retries=0).remote(self.backend_name, self.config)
                       for _ in range(self.replicas)]
        try:
            infos = await asyncio.wait_for(asyncio.gather(*[a.start.remote() for a in self.actors]), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            free = ray.available_resources()
            raise BackendError(f"{self.replicas} replicas not started after {READY_TIMEOUT_S:.0f} s "
                               f"(each needs {resources}; free in the cluster: {free.get('CPU', 0):g} CPUs, "
                               f"{free.get('GPU', 0):g} GPUs)", "use fewer --replicas or add nodes") from None
        except ray.exceptions.RayError as exc:
            raise BackendError(f"a replica failed to start: {short_reason(exc)}") from None
        for info in infos:
            if isinstance(info, _Failure):
                raise info.error()
        self.infos = infos
        here, clock = boot_id(), time.time() - time.perf_counter()
        self._shift = [0.0 if info["boot_id"] == here else info["clock"] - clock for info in infos]
        self.inflight = [0] * self.replicas
        self.served = [0] * self.replicas
        self.supports_n = all(info["supports_n"] for info in infos)
        self.api = infos[0]["api"]
        self._tokenizer = infos[0].pop("tokenizer", None)
        for info in infos[1:]:
            info.pop("tokenizer", None)
        self.load_time_s = time.perf_counter() - t0

    def own_tokenizer(self) -> Any:
        return self._tokenizer

    def count_tokens(self, text: str) -> int | None:
        tok = self.run_tokenizer or self._tokenizer
        return tok.count(text) if tok is not None else None

    async def detect_n_support(self) -> bool:
        answers = await asyncio.gather(*[a.detect_n_support.remote() for k, a in enumerate(self.actors)
                                         if k not in self.lost])
        self.supports_n = all(answers)
        return self.supports_n

    def _pick(self) -> int:
        live = [k for k in range(self.replicas) if k not in self.lost]
        if not live:
            raise BackendError("every replica is lost: " + "; ".join(f"replica {k}: {why}" for k, why in self.lost.items()))
        k = min(live, key=lambda k: (self.inflight[k], (k - self._next) % self.replicas))
        self._next = k + 1
        return k

    def _lose(self, k: int, exc: BaseException) -> str:
        why = f"replica lost: node {self.infos[k]['ip']} ({short_reason(exc)})"
        self.lost.setdefault(k, why)
        return why

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        k = self._pick()
        self.inflight[k] += 1
        try:
            answer = await self.actors[k].generate.remote(request)
        except self._ray.exceptions.RayError as exc:
            why = self._lose(k, exc)
            raise BackendError(why, retryable=len(self.lost) < self.replicas) from None
        finally:
            self.inflight[k] -= 1
        if isinstance(answer, _Failure):
            raise answer.error()
        self.served[k] += 1
        return answer

    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        try:
            k = self._pick()
        except BackendError as exc:
            record.sent = record.end = time.perf_counter()
            record.error = exc.line()
            return
        self.inflight[k] += 1
        try:
            got = await self.actors[k].stream.remote(request, record.index)
        except self._ray.exceptions.RayError as exc:
            record.end = time.perf_counter()
            record.sent = record.sent or record.scheduled or record.end
            record.success = False
            record.error = self._lose(k, exc)
            return
        finally:
            self.inflight[k] -= 1
        self.served[k] += 1
        d = self._shift[k]
        for f in dataclasses.fields(PerfRecord):
            if f.name not in ("index", "scheduled"):
                setattr(record, f.name, getattr(got, f.name))
        if d:
            record.sent += d
            record.end += d
            record.first_token = None if record.first_token is None else record.first_token + d
            record.first_content = None if record.first_content is None else record.first_content + d
            record.chunk_times[:] = [t + d for t in record.chunk_times]

    def replica_stats(self) -> list[dict[str, Any]]:
        """Per replica: where it ran, its device, load time and requests answered."""
        return [{"replica": k, "ip": info["ip"], "host": info["host"], "node_id": info["node_id"],
                 "device": info["device"], "load_time_s": info["load_time_s"], "requests": self.served[k],
                 "lost": self.lost.get(k)} for k, info in enumerate(self.infos)]

    async def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        live = [a for k, a in enumerate(self.actors) if k not in self.lost]
        if live and self.infos:
            try:
                await asyncio.wait_for(asyncio.gather(*[a.close.remote() for a in live], return_exceptions=True),
                                       CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._own:
            ray.shutdown()
        self._ray = None

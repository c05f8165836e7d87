"""Where a perf level's requests come from: the dataset plugin (with its option values and
the run's request settings) or one fixed ``--prompt``; picklable, so worker processes and Ray
actors rebuild exactly the same seeded requests."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from ..interfaces import Backend, RequestSettings


@dataclass
class RequestSource:
    """Where a level's requests come from (picklable: worker processes rebuild the same
    seeded requests from it): the dataset plugin's name and its option values, or one fixed
    prompt, with the run's request settings."""

    dataset: str | None
    prompt: str | None
    options: dict[str, Any] = field(default_factory=dict)
    settings: RequestSettings = field(default_factory=RequestSettings)

    def requests(self, tok, count: int, seed_offset: int = 0) -> Iterator[Any]:
        from dataclasses import replace

        from .requests import make_request

        settings = replace(self.settings, seed=self.settings.seed + seed_offset)
        if self.prompt is not None:
            return (make_request(self.prompt, settings, i) for i in range(count))
        return self.make(tok, settings).requests(count)

    def make(self, tok, settings: RequestSettings | None = None):
        from ..plugins import get_manager

        return get_manager().get("datasets", self.dataset)(dict(self.options), settings or self.settings, tok)


def check_first_request(backend: Backend, source: RequestSource, tok: Any) -> None:
    """A request the backend's endpoint cannot send (prompts to a rerank endpoint, images to
    completions) is one line now, not a failure per request (``Backend.check_request``)."""
    from ..types import Session

    first = next(iter(source.requests(tok, 1)), None)
    if isinstance(first, Session):
        first = first.turns[0] if first.turns else None
    if first is not None:
        backend.check_request(first)

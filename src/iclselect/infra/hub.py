"""Hugging Face loading helpers shared by the LM layer (lm/model.py) and the embedder (embed/):
quiet loading, the hub cache read the way the hub client lays it out, whether the hub can be
reached at all, and a did-you-mean over the names a user can load. Here, so that embedding does
not import the LM layer (and torch's attention kernels with it)."""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

_REACH_TIMEOUT_S = 3.0


def quiet_loading() -> None:
    """Keep transformers' per-tensor load bars and notices out of the log."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def hub_cache() -> Path:
    """The hub cache as the environment names it now (the hub client reads it once, at
    import): HF_HUB_CACHE, else HF_HOME/hub, else the client's own default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo: str) -> Path | None:
    """The cached snapshot directory of hub model `repo` holding its config.json, if any."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo, "config.json", cache_dir=hub_cache())
    return Path(config).parent if isinstance(config, str) else None


def cached_models() -> list[str]:
    """Every model id in the hub cache (its models--org--name directories)."""
    cache = hub_cache()
    if not cache.is_dir():
        return []
    return sorted(
        path.name.removeprefix("models--").replace("--", "/")
        for path in cache.iterdir()
        if path.name.startswith("models--")
    )


def offline() -> bool:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or bool(constants.HF_HUB_OFFLINE)


def hub_unreachable() -> str | None:
    """Why the hub cannot be asked (HF_HUB_OFFLINE, or no connection to its endpoint within
    a few seconds), or None. Asked once, so that a machine without network fails at once
    instead of after the hub client's retries. Behind a proxy the client is left to decide."""
    if offline():
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return None
    from huggingface_hub import constants

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=_REACH_TIMEOUT_S).close()
    except OSError:
        return f"{host} cannot be reached from this machine"
    return None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'; did you mean X?' for the known name closest to `name` (case aside), or ''."""
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
        by_lower.setdefault(k.rpartition("/")[2].lower(), k)  # a hub id by its name alone
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]}?" if close else ""

"""Quiet Hugging Face loading, shared by the LM layer (lm/model.py) and the embedder (embed/):
here, so that embedding does not import the LM layer (and torch's attention kernels with it)."""

from __future__ import annotations


def quiet_loading() -> None:
    """Keep transformers' per-tensor load bars and notices out of the log."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()

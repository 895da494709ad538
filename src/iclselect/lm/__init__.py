"""The language-model layer: requests as plain data, templates that tokenise them, one engine."""

from iclselect.lm.engine import Engine
from iclselect.lm.model import DEFAULT_MODEL, load_model
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.lm.templates import TEMPLATES, Template

__all__ = [
    "DEFAULT_MODEL",
    "TEMPLATES",
    "Engine",
    "LogprobRequest",
    "LogprobResult",
    "Template",
    "load_model",
]

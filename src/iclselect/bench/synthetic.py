"""A wICI-shaped workload that needs no data, tokenizer, embedder or weights: for a GPU machine
that has only PyTorch and transformers.

Lengths are real: `assets/alpaca_lengths.json` holds, for each row of the shipped
`data/alpaca_pool_500.json`, the token counts the default model's chat template gives its user
turn (with the assistant header), its response, and its whole exchange when it is a demo, plus
the system turn and the bare response header (`lengths_of` recomputes them; a test checks the
file). Token ids are random, drawn per row and per part, so a row's response is the same tokens
in every request that scores it and the engine's prefix sharing and deduplication see what they
see in a real run.

The requests are those of wICI as the reference code computes it: per candidate, its own
L(y | x) and L(y), and for each of its probes L(y_b | demo, x_b) (the probe's own pair is
another row's own pair): 2 + probes requests per row.

Models are built from a config (`assets/configs/*.json`) with random weights: the speed of a
forward pass does not depend on what the weights hold.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from iclselect.errors import UsageError
from iclselect.lm.requests import LogprobRequest
from iclselect.lm.templates import Encoded
from iclselect.records import Turn

CONFIGS = ("smollm2-135m", "llama-1b", "tiny")


@dataclass(frozen=True)
class Lengths:
    system: int  # the system turn every chat request starts with
    response_header: int  # the context of the unconditioned L(y)
    rows: tuple[tuple[int, int, int], ...]  # per row: user turn + header, response, demo


@cache
def lengths() -> Lengths:
    asset = resources.files("iclselect").joinpath("assets/alpaca_lengths.json")
    data = json.loads(asset.read_text())
    return Lengths(data["system"], data["response_header"], tuple(map(tuple, data["rows"])))


def lengths_of(samples: list[Any], template: Any) -> Lengths:
    """The token counts of `samples` (two or more) under `template`, as the asset stores them."""
    from iclselect.methods.loss_requests import conditioned, unconditioned

    # The system turn: what row 1's own context holds beyond what follows a demo in it.
    behind_demo = template.encode(conditioned(samples[1], samples[0].turns))
    own = template.encode(conditioned(samples[1]))
    system = len(own.context_ids) - (len(behind_demo.context_ids) - behind_demo.prefix_len)
    rows = []
    for n, sample in enumerate(samples):
        own = template.encode(conditioned(sample))
        probe = samples[1] if n == 0 else samples[0]
        as_demo = template.encode(conditioned(probe, sample.turns))
        rows.append(
            (len(own.context_ids) - system, len(own.target_ids), as_demo.prefix_len - system)
        )
    header = len(template.encode(unconditioned(samples[0])).context_ids)
    return Lengths(system, header, tuple(rows))


@dataclass(frozen=True)
class Workload:
    requests: list[LogprobRequest]
    template: SyntheticTemplate


def wici_workload(rows: int, n_probes: int, vocab: int, seed: int = 0) -> Workload:
    """`rows` candidates drawn (with replacement) from the real length distribution, each with
    `n_probes` other rows as its probes."""
    rng = random.Random(seed)
    table = lengths()
    picks = [rng.randrange(len(table.rows)) for _ in range(rows)]
    requests: list[LogprobRequest] = []
    for row in range(rows):
        requests += [_request(row), _request(row, alone=True)]
        others = rng.sample([r for r in range(rows) if r != row], min(n_probes, rows - 1))
        requests += [_request(probe, demo=row) for probe in others]
    return Workload(requests, SyntheticTemplate([table.rows[p] for p in picks], vocab, seed))


def _request(row: int, demo: int | None = None, alone: bool = False) -> LogprobRequest:
    """Placeholders the template reads back: the text is the row number."""
    prompt = () if alone else (Turn("user", str(row)),)
    demos = ((Turn("user", str(demo)), Turn("assistant", str(demo))),) if demo is not None else ()
    return LogprobRequest(prompt, str(row), demos)


class SyntheticTemplate:
    """Renders the placeholder requests of `wici_workload` as random token ids of real lengths."""

    name = "synthetic"

    def __init__(self, rows: list[tuple[int, int, int]], vocab: int, seed: int) -> None:
        self.rows = rows
        self.vocab = vocab
        self.seed = seed
        self._cache: dict[str, tuple[int, ...]] = {}
        table = lengths()
        self.system = self._ids("system", table.system)
        self.header = self._ids("header", table.response_header)

    @property
    def fingerprint(self) -> str:
        payload = json.dumps([self.rows, self.vocab, self.seed]).encode()
        return "synthetic:" + hashlib.sha256(payload).hexdigest()[:12]

    def encode(self, request: LogprobRequest) -> Encoded:
        row = int(request.target)
        user, response, _ = self.rows[row]
        target = self._ids(f"response{row}", response)
        if not request.prompt:
            return Encoded(self.header, target)
        prefix = self.system
        for demo in request.demos:
            other = int(demo[0].content)
            prefix += self._ids(f"demo{other}", self.rows[other][2])
        context = prefix + self._ids(f"user{row}", user)
        return Encoded(context, target, len(prefix) if request.demos else 0)

    def _ids(self, part: str, length: int) -> tuple[int, ...]:
        if part not in self._cache:
            rng = random.Random(f"{self.seed}:{part}")
            self._cache[part] = tuple(rng.randrange(self.vocab) for _ in range(length))
        return self._cache[part]


def random_model(config_name: str, dtype: Any, device: Any) -> Any:
    """A causal LM of the shipped config `config_name` (one of CONFIGS) with random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if config_name not in CONFIGS:
        raise UsageError(f"--model-config must be one of {', '.join(CONFIGS)}; got {config_name!r}")
    text = resources.files("iclselect").joinpath(f"assets/configs/{config_name}.json").read_text()
    config = AutoConfig.for_model(**json.loads(text))
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()

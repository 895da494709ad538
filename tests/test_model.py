"""Loading: the embedded default, and any local Hugging Face causal-LM directory."""

from __future__ import annotations

import json

import pytest
from conftest import write_json
from typer.testing import CliRunner

from iclselect.cli import app
from iclselect.lm import Engine, LogprobRequest, Template, load_model
from iclselect.records import Turn


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, lm):
    """A small randomly initialised Llama saved with the real SmolLM2 tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(lm.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )
    directory = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(directory)
    lm.tokenizer.save_pretrained(directory)
    return directory


def test_default_model_is_the_embedded_smollm2(lm):
    assert lm.model_id.startswith("smollm2-135m-instruct@")
    assert lm.model.config.num_hidden_layers == 30
    assert lm.tokenizer.chat_template


def test_a_local_model_directory_loads_and_scores(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert loaded.model_id.startswith(f"{tiny_model_dir}@")
    engine = Engine(loaded, Template("plain", loaded.tokenizer), show_progress=False)
    result = engine.loglikelihood([LogprobRequest((Turn("user", "Hi"),), "Hello there.")])[0]
    assert result.n_tokens == len(loaded.tokenizer("Hello there.").input_ids)
    assert result.logprob < 0


def test_run_with_model_option(tmp_path, tiny_model_dir, demo_rows):
    data = write_json(tmp_path / "pool.json", demo_rows[:6])
    result = CliRunner().invoke(
        app,
        ["run", str(data), "--model", str(tiny_model_dir), "--out", str(tmp_path / "out"),
         "--count", "2", "-s", "n_probes=2", "-s", "n_neighbours=3", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"].startswith(str(tiny_model_dir)) and manifest["kept"] == 2


def test_missing_model_directory_is_a_clear_error(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", demo_rows[:3])
    result = CliRunner().invoke(
        app, ["run", str(data), "--model", str(tmp_path / "nope"), "--quiet"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --model") and "config.json" in result.output

"""Loading: the embedded default, and any local Hugging Face causal-LM directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_json
from typer.testing import CliRunner

from iclselect.cli.main import app
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
        [
            "run",
            str(data),
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "out"),
            "--count",
            "2",
            "-s",
            "n_probes=2",
            "-s",
            "n_neighbours=3",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"].startswith(str(tiny_model_dir)) and manifest["kept"] == 2


def test_missing_model_directory_is_a_clear_error(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", demo_rows[:3])
    args = ["run", str(data), "-m", "ifd", "--quiet", "-o", str(tmp_path / "out"), "--model"]
    missing = CliRunner().invoke(app, [*args, str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert missing.output == f"error: --model {tmp_path / 'nope'}: no such directory\n"
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(app, [*args, str(tmp_path / "empty")])
    assert empty.exit_code == 2
    assert "not a Hugging Face model directory (no config.json)" in empty.output


@pytest.fixture
def hub_home(tmp_path, monkeypatch, lm) -> Path:
    """HF_HOME in tmp, its cache holding the default model as iclselect-test/tiny-llama, and
    no way to the network: the hub endpoint is a closed local port, and no proxy is set."""
    from iclselect.lm.model import DEFAULT_MODEL, resolve

    directory = Path(resolve(DEFAULT_MODEL).location)
    _hub_cache(tmp_path / "hf" / "hub", directory, "iclselect-test/tiny-llama")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    return tmp_path / "hf" / "hub"


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ("smollm2-135m", "smollm2-135m-instruct"),
        ("iclselect-test/tiny-lama", "iclselect-test/tiny-llama"),
    ],
)
@pytest.mark.parametrize("offline", [True, False])
def test_a_model_name_not_in_the_cache_fails_at_once_with_the_closest(
    hub_home, monkeypatch, given, suggested, offline
):
    """Offline, or with the hub unreachable, nothing is retried: the error names the cache and
    the closest name in it or shipped."""
    import huggingface_hub.constants
    import transformers.utils

    from iclselect.lm.model import resolve

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(transformers.utils, "cached_file", pytest.fail)  # the hub's retries
    with pytest.raises(FileNotFoundError) as error:
        resolve(given)
    why = "HF_HUB_OFFLINE is set" if offline else "127.0.0.1 cannot be reached from this machine"
    assert str(error.value) == (
        f"--model {given}: not a local directory, and no Hugging Face model of that name is in "
        f"the cache ({hub_home}); the hub was not asked ({why}); did you mean {suggested}?"
    )


def test_a_cached_hub_model_resolves_to_its_snapshot_without_the_hub(hub_home, monkeypatch):
    import transformers.utils

    from iclselect.lm.model import resolve

    monkeypatch.setattr(transformers.utils, "cached_file", pytest.fail)
    source = resolve("iclselect-test/tiny-llama")
    assert Path(source.location).parent.parent == hub_home / "models--iclselect-test--tiny-llama"
    assert source.fingerprint == "hub-0123456789ab"


def _hub_cache(root, directory, repo: str = "iclselect-test/smollm2"):
    """A Hugging Face cache holding `directory` as the hub model `repo`, laid out as the hub
    client lays it out: models--org--name/{refs/main, snapshots/<commit>/<files>}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    model = root / ("models--" + repo.replace("/", "--"))
    snapshot = model / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text(commit)
    for path in directory.iterdir():
        (snapshot / path.name).symlink_to(path)
    return commit


def test_a_hub_id_loads_from_the_local_cache_offline(tmp_path, lm):
    """`--model org/name` resolves through transformers' cache with HF_HUB_OFFLINE=1 (run in a
    fresh process: the hub client reads its environment once, at import)."""
    import os
    import subprocess
    import sys

    from iclselect.lm.model import DEFAULT_MODEL, resolve

    commit = _hub_cache(tmp_path / "hub", Path(resolve(DEFAULT_MODEL).location))
    script = (
        "from iclselect.lm import Engine, LogprobRequest, Template, load_model\n"
        "from iclselect.records import Turn\n"
        "loaded = load_model('iclselect-test/smollm2')\n"
        "engine = Engine(loaded, Template('chat', loaded.tokenizer), show_progress=False)\n"
        "result = engine.loglikelihood([LogprobRequest((Turn('user', 'Hi'),), 'Hello.')])[0]\n"
        "print(loaded.model_id, result.logprob)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    model_id, logprob = done.stdout.split()
    assert model_id == f"iclselect-test/smollm2@hub-{commit[:12]}"
    engine = Engine(lm, Template("chat", lm.tokenizer), show_progress=False)
    expected = engine.loglikelihood([LogprobRequest((Turn("user", "Hi"),), "Hello.")])[0]
    assert abs(float(logprob) - expected.logprob) < 1e-4


def test_an_unknown_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from iclselect.lm.model import resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--model nobody/nothing: not a local directory"):
        resolve("nobody/nothing")


def test_weights_rewritten_in_place_are_a_new_model_for_the_store(tmp_path, tiny_model_dir):
    """Retraining into the same directory writes same-shape tensors, so the same file sizes:
    the store must still miss, because the fingerprint covers the weights' bytes."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    weights = directory / "model.safetensors"
    requests = [LogprobRequest((Turn("user", "Hi"),), "Hello there.")]

    def run() -> Engine:
        loaded = load_model(str(directory))
        engine = Engine(
            loaded,
            Template("plain", loaded.tokenizer),
            show_progress=False,
            store_path=tmp_path / "store",
        )
        engine.loglikelihood(requests)
        return engine

    assert run().stats["computed"] == 1
    assert run().stats["stored"] == 1  # same weights: answered from the store
    size = weights.stat().st_size
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    model.save_pretrained(directory)
    assert weights.stat().st_size == size
    assert run().stats["computed"] == 1

"""The GPU device check, run here on a CPU with a tiny config, as CI runs it: it must need
nothing beyond a bare GPU image (faiss, datasets, gguf, ray, vLLM and sentence-transformers are
made unimportable) and end with one JSON line of results. Figures are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from iclselect.bench.synthetic import lengths, lengths_of, wici_workload

ROOT = Path(__file__).resolve().parents[1]
_BLOCKER = """
import sys
class _Unavailable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"faiss", "datasets", "gguf", "ray", "vllm",
                                  "sentence_transformers"}:
            raise ImportError(f"{name} is not installed on a bare GPU image")
sys.meta_path.insert(0, _Unavailable())
"""


def test_device_check_runs_on_a_bare_image_and_prints_one_json_line(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_BLOCKER)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "ROWS": "6",
        "OUT": str(tmp_path / "out"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "scripts/device_check.sh", "tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["missing"] == []
    (model,) = result["device_check"][0]["models"]
    assert model["config"] == "tiny" and model["errors"] == {}
    assert set(model["arms"]) == {
        "reference loop (fp32)",
        "HF padded batch (SDPA)",
        "engine (loop attention)",
        "engine (flex attention)",
    }
    assert "| engine (flex attention) |" in (tmp_path / "out" / "BENCHMARKS.md").read_text()


def test_the_length_asset_is_the_shipped_slice_under_the_default_template(lm):
    """assets/alpaca_lengths.json is what lengths_of gives for data/alpaca_pool_500.json."""
    from iclselect.io import read_dataset
    from iclselect.lm import Template

    samples = read_dataset(ROOT / "data" / "alpaca_pool_500.json").samples
    measured, shipped = lengths_of(samples[:40], Template("chat", lm.tokenizer)), lengths()
    assert (measured.system, measured.response_header) == (shipped.system, shipped.response_header)
    assert measured.rows == shipped.rows[:40]


def test_the_synthetic_workload_has_wici_shape():
    """Per candidate: its own L(y|x) and L(y), then one demo request per probe; a row's response
    is the same tokens wherever it is scored."""
    workload = wici_workload(rows=5, n_probes=3, vocab=100)
    assert len(workload.requests) == 5 * (2 + 3)
    encode = workload.template.encode
    own, probe = encode(workload.requests[0]), encode(workload.requests[2])
    assert own.prefix_len == 0 and probe.prefix_len > 0
    same_row = [r for r in workload.requests if r.target == workload.requests[2].target]
    assert len({encode(r).target_ids for r in same_row}) == 1

#!/usr/bin/env bash
# The GPU device check: `iclselect bench speed --synthetic` on the default model's architecture
# and a ~1B Llama, random weights, no data files. Needs only what a bare GPU image has (PyTorch,
# transformers, typer, psutil, scipy) and src/ on PYTHONPATH: faiss, datasets, gguf, ray and
# vLLM are never imported. Each model runs in its own process, so one that fails or runs out of
# time leaves the others' figures. Prints each report, then one JSON line of all results; with
# OUT set, the reports go to $OUT/BENCHMARKS.md and the line to $OUT/device_check.json.
#
#   scripts/device_check.sh                 # smollm2-135m and llama-1b, 400 candidates each
#   ROWS=8 scripts/device_check.sh tiny     # the CI smoke run, on a CPU
#
# With POOL set (a pool file, e.g. the 21,942-row alpaca_pool_21k.json.gz copied into runs/,
# which is ignored, and carried with the run), it then runs `iclselect bench pipeline
# --kernel hf` on all of POOL's rows (E2E_ROWS to cut it) with a random-weight llama-1b
# (assets/configs/llama-1b.json) saved with the default model's tokenizer: the whole `iclselect
# run`, every stage timed, the forward passes on the GPU. That step needs the full install
# (faiss, sentence-transformers, gguf); where one is missing it says so in the JSON line.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(smollm2-135m llama-1b)
status=0
for config in "${configs[@]}"; do
  python3 -m iclselect bench speed --synthetic --model-config "$config" --rows "${ROWS:-400}" \
    --benchmarks "$out/BENCHMARKS.md" --json "$out/$config.json" || status=1
done
if [ -n "${POOL:-}" ]; then
  model_dir="$out/llama-1b-random"
  if python3 - "$model_dir" > "$out/e2e.log" 2>&1 <<'PY'
import sys
import torch
from iclselect.bench.synthetic import random_model
from iclselect.lm.model import load_model
random_model("llama-1b", torch.bfloat16, "cpu").save_pretrained(sys.argv[1])
load_model().tokenizer.save_pretrained(sys.argv[1])
PY
  then
    rows=$(python3 -c "import sys; from iclselect.io import read_dataset; print(len(read_dataset(sys.argv[1]).samples))" "$POOL")
    python3 -m iclselect bench pipeline --kernel hf --model "$model_dir" --pool "$POOL" \
      --rows "${E2E_ROWS:-$rows}" --no-dry-run --workdir "$out/e2e" \
      --benchmarks "$out/BENCHMARKS.md" >> "$out/e2e.log" 2>&1 && touch "$out/e2e.ok"
  fi
  [ -f "$out/e2e.ok" ] || { status=1; tail -20 "$out/e2e.log"; }
fi
python3 - "$out" "${configs[@]}" <<'PY' || status=1
import json, pathlib, sys
out, configs = pathlib.Path(sys.argv[1]), sys.argv[2:]
runs = [json.loads((out / f"{c}.json").read_text()) for c in configs if (out / f"{c}.json").is_file()]
e2e = None
if (out / "e2e.log").is_file():
    e2e = "ok" if (out / "e2e.ok").is_file() else (out / "e2e.log").read_text()[-2000:]
line = json.dumps({"device_check": runs, "missing": [c for c in configs if not (out / f"{c}.json").is_file()], "end_to_end": e2e}, separators=(",", ":"))
(out / "device_check.json").write_text(line + "\n")
print(line)
PY
exit $status

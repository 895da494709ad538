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
python3 - "$out" "${configs[@]}" <<'PY' || status=1
import json, pathlib, sys
out, configs = pathlib.Path(sys.argv[1]), sys.argv[2:]
runs = [json.loads((out / f"{c}.json").read_text()) for c in configs if (out / f"{c}.json").is_file()]
line = json.dumps({"device_check": runs, "missing": [c for c in configs if not (out / f"{c}.json").is_file()]}, separators=(",", ":"))
(out / "device_check.json").write_text(line + "\n")
print(line)
PY
exit $status

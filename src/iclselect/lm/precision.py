"""Choosing the compute dtype and device.

`auto` never picks a slower dtype: on a GPU it is bf16 (fp16 where bf16 is unsupported); on a
CPU it times a matrix multiply in fp32 and in bf16 for about a second and keeps the faster,
remembering the answer per machine. On 2-core cloud CPUs without AMX, bf16 matmul is about half
as fast as fp32, so auto picks fp32 there.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from iclselect.errors import UsageError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = ("auto", *DTYPES)


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def resolve_dtype(requested: str, device: torch.device, cache: Path) -> torch.dtype:
    if requested != "auto":
        if requested not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(CHOICES)}; got {requested!r}")
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[_cpu_probe(cache / "dtype-probe.json")]


def matmul_gflops(
    dtype: torch.dtype, seconds: float = 0.5, size: int = 1024, device: str = "cpu"
) -> float:
    """Sustained matmul throughput of `device` in `dtype`, over about `seconds`."""
    a = torch.randn(size, size).to(device, dtype)
    b = torch.randn(size, size).to(device, dtype)
    a @ b  # warm-up: the first call pays for kernel selection
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    sync()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
        if runs % 16 == 0:
            sync()
    sync()
    return 2 * size**3 * runs / (time.perf_counter() - started) / 1e9


def _cpu_probe(path: Path) -> str:
    machine = f"{cpu_name()}|{torch.__version__}|{torch.get_num_threads()} threads"
    known = json.loads(path.read_text()) if path.is_file() else {}
    if machine not in known:
        speed = {name: matmul_gflops(DTYPES[name]) for name in ("fp32", "bf16")}
        known[machine] = {"choice": max(speed, key=speed.get), "gflops": speed}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=2))
    return known[machine]["choice"]


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def dtype_name(dtype: torch.dtype) -> str:
    """The --dtype name of a torch dtype (fp32, bf16, fp16)."""
    return next(name for name, value in DTYPES.items() if value == dtype)

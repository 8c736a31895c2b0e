"""keep_cpu_memory_mapped: glibc keeps freed heap memory for reuse (CPU speed), opt-out by env var."""

import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, json, sys
import torch
from detrex.utils.env import keep_cpu_memory_mapped
first = keep_cpu_memory_mapped()
again = keep_cpu_memory_mapped()
x = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB: above glibc's largest mmap threshold
del x
y = torch.ones(64 << 20, dtype=torch.uint8)
print(json.dumps({"first": first, "again": again, "sum": int(y.sum())}))
"""


def _run(env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DETREX_CPU_MALLOC"}
    if env_value is not None:
        env["DETREX_CPU_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuning_is_on_by_default_and_idempotent():
    result = _run(None)
    assert result == {"first": True, "again": True, "sum": 64 << 20}  # allocations still work


@pytest.mark.parametrize("value", ["default", "off", "0"])
def test_env_var_turns_it_off(value):
    result = _run(value)
    assert result["first"] is False and result["again"] is False and result["sum"] == 64 << 20

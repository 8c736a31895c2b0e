"""The "malloc" kernel: glibc keeps freed heap memory for reuse in CPU runs; the switch turns it off."""

import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import json
import torch
from detrex.layers import cpu_kernels
first = cpu_kernels.prepare_cpu_process()
again = cpu_kernels.prepare_cpu_process()
x = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB: above glibc's largest mmap threshold
del x
y = torch.ones(64 << 20, dtype=torch.uint8)
print(json.dumps({"first": first, "again": again, "sum": int(y.sum())}))
"""


def _run(env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DETREX_CPU_KERNELS"}
    if env_value is not None:
        env["DETREX_CPU_KERNELS"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuning_is_on_by_default_and_idempotent():
    result = _run(None)
    assert result == {"first": True, "again": True, "sum": 64 << 20}  # allocations still work


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_the_switch_turns_it_off(value):
    result = _run(value)
    assert result == {"first": False, "again": False, "sum": 64 << 20}

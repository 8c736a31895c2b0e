#!/usr/bin/env python
r"""Everything a GPU should answer, in one command: the CUDA tests and the GPU benchmark table.

    python tools/gpu_check.py --output gpu.json
    python tools/gpu_check.py --output gpu_compile.json --compile --skip-tests --bench-budget 1200
    python tools/gpu_check.py --dry-run --output gpu_dry_run.json

Steps, made to fit 8 minutes on one GPU: the tests stop after --tests-timeout seconds, and benchmark
figures that would start after --bench-budget seconds are skipped (reported under "errors"). The JSON is
rewritten after each figure, so an interrupted run keeps what it measured.
  tests           `pytest -m cuda` in a subprocess: each test's outcome, duration and recorded figures
  parity          from those tests: the parity cases on the GPU with TF32 off ("ieee") and on ("tf32"),
                  the differences measured against the official references and pass / fail
  fps             inference images/s at batch 1 on one random 800x1333 image, fp32 and bf16 autocast
  img_per_s       training images/s at batch 2 (random images of 800x1333 and 800x1200 with 2 / 1 boxes):
                  detrex.engine.Trainer steps (forward, loss, backward, clipping and AdamW as configured)
                  in fp32, bf16 autocast and fp16 autocast with a GradScaler
  peak_memory_mb  torch.cuda.max_memory_allocated of each of those (eval_fp32, .., train_fp16)
for Anchor-DETR and Conditional-DETR with ResNet-50 and ResNet-50-DC5 (random weights: speed and memory
do not depend on them). fp32 uses PyTorch's default float32 settings (TF32 in cuDNN convolutions only).
Warm-up iterations are excluded; CUDA work is waited for after every timed iteration. --compile adds
"bf16_compile" figures of the torch.compile'd models (compiling takes minutes: raise --bench-budget).
--dry-run runs the same steps on the CPU with the tiny quickstart configs and fewer iterations (the CUDA
tests skip there; peak_memory_mb is the process's peak resident set size): the JSON has the same keys.
"""

from __future__ import annotations

import argparse
import gc
import glob
import importlib.util
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import nullcontext
from types import SimpleNamespace

import torch
from tabulate import tabulate

from detrex.config import LazyConfig, instantiate
from detrex.engine import HookBase, Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_benchmark():
    """tools/benchmark.py, whose timing, memory and synthetic-input helpers this reuses (tools/ is not a
    package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location(
        "detrex_tools_benchmark", os.path.join(REPO, "tools", "benchmark.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()
MODELS = {
    "anchor_detr_r50": "projects/anchor_detr/configs/anchor_detr_r50_50ep.py",
    "anchor_detr_r50_dc5": "projects/anchor_detr/configs/anchor_detr_r50_dc5_50ep.py",
    "conditional_detr_r50": "projects/conditional_detr/configs/conditional_detr_r50_50ep.py",
    "conditional_detr_r50_dc5": "projects/conditional_detr/configs/conditional_detr_r50_dc5_50ep.py",
}
DRY_RUN_MODELS = {
    "anchor_detr_tiny": "projects/anchor_detr/configs/anchor_detr_tiny_synthetic.py",
    "conditional_detr_tiny": "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py",
}
INPUT_SIZE = (800, 1333)
TRAIN_SIZES = [(800, 1333), (800, 1200)]
DRY_RUN_INPUT_SIZE = (128, 213)  # the tiny models on a shared 2-core CPU: seconds, not minutes
DRY_RUN_TRAIN_SIZES = [(128, 213), (128, 192)]
EVAL_DTYPES = ("fp32", "bf16")
TRAIN_DTYPES = ("fp32", "bf16", "fp16")
AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", required=True, metavar="JSON", help="where to write the results")
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, tiny configs")
    parser.add_argument("--compile", action="store_true", help="add torch.compile'd bf16 figures")
    parser.add_argument("--skip-tests", action="store_true", help="only the benchmark table")
    parser.add_argument("--tests-timeout", type=float, default=240, help="seconds for the pytest run")
    parser.add_argument(
        "--bench-budget", type=float, default=180, help="seconds for the table; later figures skip"
    )
    return parser


def environment(device: str) -> dict:
    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    cuda = device == "cuda"
    return {
        "device": torch.cuda.get_device_name(0) if cuda else benchmark.cpu_name(),
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu": benchmark.cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        # the device tool copies the working tree without .git: DETREX_COMMIT names the commit then
        "commit": git("rev-parse", "HEAD") or os.environ.get("DETREX_COMMIT", "unknown"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "memory": "torch.cuda.max_memory_allocated" if cuda else "process peak resident set size (CPU)",
    }


def cuda_test_files() -> list[str]:
    """The files of the tests marked cuda: tests/**/test_*cuda*.py (tests/tools/test_gpu_check.py checks
    that no cuda test lives elsewhere). Collecting only these keeps the run short. The parity tests run
    first and the train_net subprocesses last: a run cut short keeps the results that matter most."""
    pattern = os.path.join(REPO, "tests", "**", "test_*cuda*.py")
    files = sorted(os.path.relpath(path, REPO) for path in glob.glob(pattern, recursive=True))
    return sorted(files, key=lambda f: ("parity" not in f, "train_net" in f))


def run_cuda_tests(timeout: float) -> dict:
    """`pytest -m cuda` in a subprocess; per test: outcome, duration, message and recorded properties.
    After ``timeout`` seconds pytest is interrupted (as by Ctrl-C), so it still writes the results of the
    tests that ran."""
    with tempfile.TemporaryDirectory() as tmp:
        xml_file = os.path.join(tmp, "cuda.xml")
        argv = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
        argv += ["-o", "junit_family=xunit1"]  # the family that keeps record_property's values
        argv += [f"--junitxml={xml_file}", *cuda_test_files()]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        with tempfile.TemporaryFile("w+") as log:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                returncode = None
            log.seek(0)
            tail = log.read()[-3000:]
        if returncode is None:
            tail = f"pytest interrupted after {timeout:.0f} s (--tests-timeout)\n{tail}"
        results = parse_junit(xml_file) if os.path.isfile(xml_file) else []
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("passed", "failed", "error", "skipped")}
    return {
        **counts,
        "returncode": returncode,
        "duration_s": time.perf_counter() - start,
        "output_tail": tail if returncode not in (0, 5) else "",
        "results": results,
    }


def parse_junit(path: str) -> list[dict]:
    """pytest's JUnit XML (family xunit1): per test "test" (its id), "outcome" (passed, failed, error or
    skipped), "duration_s", "message" and, when it recorded any, "properties" (name -> value)."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.get("name") is None:  # the test an interruption stopped: pytest writes an empty entry
            continue
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        result = {"test": f"{file}::{case.get('name')}", "duration_s": float(case.get("time", 0))}
        result["outcome"], result["message"] = "passed", ""
        for outcome in ("failure", "error", "skipped"):
            element = case.find(outcome)
            if element is not None:
                result["outcome"] = {"failure": "failed"}.get(outcome, outcome)
                result["message"] = (element.get("message") or element.text or "")[:2000]
                break
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if properties:
            result["properties"] = properties
        results.append(result)
    return results


def parity_results(tests: dict) -> dict:
    """The parity tests' results keyed by their parameters ("anchor_detr_r50_50ep-ieee"), with the
    differences each recorded (even when it failed)."""
    parity = {}
    for result in tests["results"]:
        if "test_parity_cuda.py::" not in result["test"]:
            continue
        key = result["test"].split("[", 1)[-1].rstrip("]")
        entry = {"outcome": result["outcome"], "message": result["message"]}
        if "parity" in result.get("properties", {}):
            entry.update(json.loads(result["properties"]["parity"]))
        parity[key] = entry
    return parity


class StepTimes(HookBase):
    """Seconds of each Trainer step after the first ``warmup`` ones, CUDA work waited for."""

    def __init__(self, warmup: int, device: str):
        self.warmup, self.times = warmup, []
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def before_step(self):
        self.sync()
        self._start = time.perf_counter()

    def after_step(self):
        self.sync()
        if self.trainer.iter >= self.warmup:
            self.times.append(time.perf_counter() - self._start)


def train_figures(cfg, model, dtype: str, settings: dict, device: str) -> dict:
    """Images/s and peak memory of Trainer steps on one fixed synthetic batch, built as tools/train_net.py
    builds them."""
    batch = benchmark.synthetic_train_batch(settings["train_sizes"], cfg.model.num_classes)
    warmup, num_iter = settings["train_warmup"], settings["train_iter"]
    model.train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    clip = cfg.train.clip_grad
    trainer = Trainer(
        model,
        itertools.repeat(batch),
        optimizer,
        amp_enabled=dtype != "fp32",
        amp_dtype={"fp32": "auto", "bf16": "bfloat16", "fp16": "float16"}[dtype],
        clip_grad_params=dict(clip.params) if clip.enabled else None,
    )
    timer = StepTimes(warmup, device)
    trainer.register_hooks([timer])
    meter = benchmark.MemoryMeter(device)
    meter.start()
    trainer.train(0, warmup + num_iter)
    memory = meter.stop()
    seconds = sum(timer.times) / len(timer.times)
    return {"img_per_s": len(batch) / seconds, "peak_memory_mb": peak_mb(memory)}


def eval_figures(cfg, model, dtype: str, settings: dict, device: str) -> dict:
    """Images/s and peak memory of batch-1 inference on one random image (tools/benchmark.py's eval)."""

    def autocast():
        return torch.autocast(device, dtype=AMP[dtype]) if AMP[dtype] is not None else nullcontext()

    args = SimpleNamespace(
        input_size=tuple(settings["input_size"]),
        num_iter=settings["eval_iter"],
        warmup=settings["eval_warmup"],
    )
    result = benchmark.bench_eval(cfg, model, args, device, autocast)
    return {"fps": result["images_per_s"], "peak_memory_mb": peak_mb(result)}


def peak_mb(memory: dict) -> float:
    return memory["peak_memory_mb"] if "peak_memory_mb" in memory else memory["peak_rss_mb"]


def run_benchmarks(report: dict, models: dict, device: str, budget: float, save):
    """Fills report["fps"], ["img_per_s"], ["peak_memory_mb"] model by model; a figure that fails or
    starts after ``budget`` seconds is None, with the reason in report["errors"]."""
    start, settings = time.perf_counter(), report["settings"]
    plan = [("eval", dtype) for dtype in EVAL_DTYPES] + [("train", dtype) for dtype in TRAIN_DTYPES]
    plan += [("eval", "bf16_compile"), ("train", "bf16_compile")] if settings["compile"] else []
    for name, config in models.items():
        cfg = LazyConfig.apply_overrides(
            LazyConfig.load(os.path.join(REPO, config)), [f"train.device={device}"]
        )
        model = instantiate(cfg.model).to(device)
        compiled = torch.compile(model) if settings["compile"] else None
        for task, dtype in plan:
            figure = "fps" if task == "eval" else "img_per_s"
            report[figure].setdefault(name, {})[dtype] = None
            report["peak_memory_mb"].setdefault(name, {})[f"{task}_{dtype}"] = None
            if time.perf_counter() - start > budget:
                report["errors"][f"{name}/{task}_{dtype}"] = f"skipped: the {budget:.0f} s budget was spent"
                continue
            amp = dtype.removesuffix("_compile")
            target = compiled if dtype.endswith("_compile") else model
            try:
                figures = eval_figures if task == "eval" else train_figures
                result = figures(cfg, target, amp, settings, device)
            except Exception as e:  # e.g. out of memory: reported, the other figures still run
                report["errors"][f"{name}/{task}_{dtype}"] = f"{type(e).__name__}: {str(e)[:500]}"
            else:
                report[figure][name][dtype] = result[figure]
                report["peak_memory_mb"][name][f"{task}_{dtype}"] = result["peak_memory_mb"]
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
            save()
        del model, compiled


def format_table(report: dict) -> str:
    rows = []
    for name in report["fps"]:
        fps, img, mem = report["fps"][name], report["img_per_s"][name], report["peak_memory_mb"][name]
        row = [name] + [fps.get(d) for d in fps] + [img.get(d) for d in img]
        rows.append(row + [mem.get("train_fp32")])
    first = next(iter(report["fps"].values()), {})
    train_dtypes = next(iter(report["img_per_s"].values()), {})
    headers = ["model"] + [f"fps {d}" for d in first] + [f"img/s {d}" for d in train_dtypes]
    return tabulate(rows, headers=headers + ["train fp32 peak MB"], floatfmt=".1f", tablefmt="pipe")


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        get_parser().error("no CUDA device is visible; use --dry-run to check the command on the CPU")
    if args.dry_run:
        # the dry run checks the plumbing, not the speed: one thread is the steadiest on a shared CPU
        torch.set_num_threads(1)
        models = DRY_RUN_MODELS
        settings = {"input_size": DRY_RUN_INPUT_SIZE, "train_sizes": DRY_RUN_TRAIN_SIZES}
        settings.update(eval_warmup=0, eval_iter=1, train_warmup=0, train_iter=1)
    else:
        models = MODELS
        settings = {"input_size": INPUT_SIZE, "train_sizes": TRAIN_SIZES}
        settings.update(eval_warmup=5, eval_iter=20, train_warmup=3, train_iter=10)
    report = {
        "dry_run": args.dry_run,
        "environment": environment(device),
        "settings": {**settings, "compile": args.compile},
        "fps": {},
        "img_per_s": {},
        "peak_memory_mb": {},
        "parity": {},
        "tests": {},
        "errors": {},
    }

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)

    if not args.skip_tests:
        report["tests"] = run_cuda_tests(args.tests_timeout)
        report["parity"] = parity_results(report["tests"])
        t = report["tests"]
        print(
            f"CUDA tests: {t['passed']} passed, {t['failed']} failed, {t['error']} errors, {t['skipped']} skipped"
        )
        save()
    run_benchmarks(report, models, device, args.bench_budget, save)
    print(format_table(report))
    for key, message in report["errors"].items():
        print(f"{key}: {message}")
    save()
    print(f"wrote {args.output}")
    failed = report["tests"].get("failed", 0) + report["tests"].get("error", 0)
    return 1 if failed or report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

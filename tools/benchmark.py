r"""Measure the speed and peak memory of a configured model and its data loader.

    python tools/benchmark.py --config-file projects/anchor_detr/configs/anchor_detr_r50_50ep.py \
        --task all --num-iter 50 --warmup 5 --output bench.json

Side by side with the official implementations (their protocol: 2 threads, one task per process):

    python tools/benchmark.py --config-file projects/anchor_detr/configs/anchor_detr_r50_50ep.py \
        --task all --isolate --threads 2 --input-size 800x1216 --train-size 512x640,480x640 \
        --num-iter 5 --warmup 2 train.device=cpu

Tasks (warm-up iterations are excluded from every number):
  eval   inference latency per image at batch 1, on test-loader images (pre-loaded) or on a fixed
         random image of --input-size HxW (the size the model sees, e.g. 800x1216)
  train  one training step (forward, backward, clipping as configured, optimizer step) on one
         pre-loaded batch of the train loader, or on one synthetic batch of random images of the
         --train-size sizes with 1-2 boxes each; data loading is not included
  data   the train loader alone: batches and images per second
  all    eval, train and data in turn
  kernels
         what each CPU kernel of detrex.layers.cpu_kernels is worth in the train step on this machine:
         steps in pairs, one with every kernel on, one with that kernel off (order alternating),
         --num-iter pairs per kernel; the median paired difference in ms and in % of the step
  coco_eval
         COCO box evaluation alone (loadRes, evaluate, accumulate, summarize) of --num-images synthetic
         COCO-like images (80 classes, ~7 boxes, 100 scored detections each) with pycocotools and, when
         installed, faster-coco-eval (COCOEvaluator(use_fast_impl=True)); AP of both is compared; needs
         no config
Peak memory is torch.cuda.max_memory_allocated on CUDA; on the CPU it is the process's peak resident
set size (ru_maxrss), which only grows: its growth during a task is reported too, and with --isolate
each task runs in a fresh process, whose whole peak (process_peak_rss_mb: model, optimizer state,
activations, libraries) is comparable with a separate script's ru_maxrss.
A task that fails (data without its dataset, say) is reported with its whole reason under the table and in
the JSON; the other tasks still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from omegaconf import OmegaConf
from tabulate import tabulate
from tqdm import tqdm

from detrex.config import LazyConfig, instantiate
from detrex.engine.launch import check_device
from detrex.layers import box_cxcywh_to_xyxy, cpu_kernels
from detrex.structures import Boxes, Instances

TASKS = ("eval", "train", "data")
EXTRA_TASKS = ("coco_eval",)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", metavar="FILE", help="lazy config (.py/.yaml); not for coco_eval")
    parser.add_argument(
        "--task", required=True, choices=(*TASKS, "all", "kernels", *EXTRA_TASKS), help="what to time"
    )
    parser.add_argument(
        "--num-images", type=int, default=5000, help="coco_eval: synthetic images to evaluate"
    )
    parser.add_argument("--num-iter", type=int, default=20, help="timed iterations per task")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations before timing")
    parser.add_argument("--input-size", default=None, metavar="HxW", help="eval on a fixed HxW image")
    parser.add_argument(
        "--train-size", default=None, metavar="HxW[,HxW..]", help="train on random images of these sizes"
    )
    parser.add_argument("--isolate", action="store_true", help="run each task in a fresh process")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (eval and train)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast for eval and train")
    parser.add_argument("--output", default=None, metavar="JSON", help="also write the results here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def parse_size(text: str, flag: str = "--input-size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected HxW, e.g. 800x1216") from None
    if h < 1 or w < 1:
        raise ValueError(f"{flag} {text!r}: height and width must be positive")
    return h, w


def process_peak_rss_mb() -> float:
    """The whole process's peak resident set size so far (ru_maxrss), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if platform.system() == "Darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


class MemoryMeter:
    """Peak memory of the code run between `start()` and `stop()` (see the module docstring)."""

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda")

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._rss_start = process_peak_rss_mb()

    def stop(self) -> dict:
        if self.cuda:
            torch.cuda.synchronize()
            return {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20}
        peak = process_peak_rss_mb()
        return {"peak_rss_mb": peak, "rss_growth_mb": peak - self._rss_start}


def timed(step: Callable[[], object], num_iter: int, warmup: int, device: str, desc: str) -> np.ndarray:
    """Seconds per call of `step`, `warmup` calls excluded; CUDA work is waited for."""
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in tqdm(range(num_iter), desc=desc, leave=False):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return np.array(times)


def _summary(times: np.ndarray, per_iter_images: float) -> dict:
    return {
        "iterations": len(times),
        "mean_s_per_iter": float(times.mean()),
        "median_s_per_iter": float(np.median(times)),
        "iter_per_s": float(1.0 / times.mean()),
        "images_per_s": float(per_iter_images / times.mean()),
    }


def eval_inputs(cfg, input_size: tuple[int, int] | None, count: int) -> list[dict]:
    """Model inputs for batch-1 inference: test-loader images, or one random image of input_size."""
    if input_size is not None:
        h, w = input_size
        image = torch.randint(
            0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        )
        return [{"image": image, "height": h, "width": w}]
    loader = instantiate(cfg.dataloader.test)
    inputs = [x for _, batch in zip(range(count), loader) for x in batch]
    if not inputs:
        raise ValueError("the test loader gave no images; pass --input-size HxW instead")
    return inputs


def eval_step(cfg, model, args, autocast) -> tuple[Callable[[], None], list[dict]]:
    """One batch-1 inference per call, cycling through the inputs; and the inputs."""
    inputs = eval_inputs(cfg, args.input_size, count=min(args.num_iter, 8))
    model.eval()
    position = iter(range(10**9))

    def step():
        with torch.no_grad(), autocast():
            model([inputs[next(position) % len(inputs)]])

    return step, inputs


def bench_eval(cfg, model, args, device: str, autocast) -> dict:
    step, inputs = eval_step(cfg, model, args, autocast)
    meter = MemoryMeter(device)
    meter.start()
    times = timed(step, args.num_iter, args.warmup, device, "eval")
    sizes = sorted({tuple(x["image"].shape[-2:]) for x in inputs})
    result = {**_summary(times, 1), "latency_ms": float(times.mean() * 1000), "input_sizes": sizes}
    return {**result, **meter.stop()}


def synthetic_train_batch(sizes: list[tuple[int, int]], num_classes: int = 80) -> list[dict]:
    """Random uint8 images of the given sizes with 2, 1, 2, 1, .. boxes each (the official scripts' targets:
    classes 1, 5 / 7 (mod num_classes), normalised cxcywh (0.5, 0.5, 0.2, 0.3), (0.3, 0.6, 0.1, 0.2) /
    (0.4, 0.4, 0.3, 0.3))."""
    generator = torch.Generator().manual_seed(0)
    targets = [([1, 5], [[0.5, 0.5, 0.2, 0.3], [0.3, 0.6, 0.1, 0.2]]), ([7], [[0.4, 0.4, 0.3, 0.3]])]
    targets = [([c % num_classes for c in labels], boxes) for labels, boxes in targets]
    batch = []
    for i, (h, w) in enumerate(sizes):
        labels, cxcywh = targets[i % 2]
        xyxy = box_cxcywh_to_xyxy(torch.tensor(cxcywh)) * torch.tensor([w, h, w, h])  # pixels of (h, w)
        instances = Instances((h, w), gt_boxes=Boxes(xyxy), gt_classes=torch.tensor(labels))
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator)
        batch.append({"image": image, "height": h, "width": w, "image_id": i, "instances": instances})
    return batch


def train_step(cfg, model, args, autocast) -> tuple[Callable[[], None], list[dict]]:
    """One training step per call (as detrex.engine.Trainer.run_step) on one fixed batch; and the batch."""
    if args.train_size is not None:
        batch = synthetic_train_batch(args.train_size, OmegaConf.select(cfg, "model.num_classes", default=80))
    else:
        loader = instantiate(cfg.dataloader.train)
        batch = next(iter(loader))
        del loader  # stops its workers: only the step is timed
    model.train()
    if OmegaConf.select(cfg, "optimizer.params._target_", default=None) is not None:
        cfg.optimizer.params.model = model  # as tools/train_net.py does
    optimizer = instantiate(cfg.optimizer)
    clip = OmegaConf.select(cfg, "train.clip_grad", default=None)
    clip_args = dict(clip.params) if clip is not None and clip.enabled else None

    def step():
        optimizer.zero_grad(set_to_none=True)  # before the forward: lower peak memory
        with autocast():
            loss_dict = model(batch)
        losses = sum(loss_dict.values())
        losses.backward()
        if clip_args is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), **clip_args)
        optimizer.step()

    return step, batch


def bench_train(cfg, model, args, device: str, autocast) -> dict:
    step, batch = train_step(cfg, model, args, autocast)
    meter = MemoryMeter(device)
    meter.start()
    times = timed(step, args.num_iter, args.warmup, device, "train")
    return {**_summary(times, len(batch)), "batch_size": len(batch), **meter.stop()}


def bench_kernels(cfg, model, args, autocast) -> dict:
    """What each CPU kernel is worth in the train step (no kernel applies in inference but ``malloc``, which
    is process-wide and not toggled here: compare --isolate runs with DETREX_CPU_KERNELS=0 for it). Every
    kernel in turn is off for one step of a pair whose other step has all kernels on, the order alternating;
    reported: the median of the paired differences, in ms and in % of the step with the kernel off."""
    kernels = [k for k in cpu_kernels.KERNELS if k != "malloc"]
    step = train_step(cfg, model, args, autocast)[0]
    with cpu_kernels.use_cpu_kernels(True):
        for _ in range(args.warmup):
            step()
    results = {"pairs": args.num_iter}
    for kernel in kernels:
        times = {True: [], False: []}
        for i in range(args.num_iter):
            for enabled in (True, False) if i % 2 == 0 else (False, True):
                with cpu_kernels.use_cpu_kernels(True if enabled else set(kernels) - {kernel}):
                    start = time.perf_counter()
                    step()
                    times[enabled].append(time.perf_counter() - start)
        on, off = np.array(times[True]), np.array(times[False])
        gain = float(np.median(off - on))
        results[f"{kernel} on_median_s"] = float(np.median(on))
        results[f"{kernel} off_median_s"] = float(np.median(off))
        results[f"{kernel} gain_ms"] = 1000.0 * gain
        results[f"{kernel} gain_percent"] = 100.0 * gain / float(np.median(off))
    return results


def bench_data(cfg, args) -> dict:
    data_iter = iter(instantiate(cfg.dataloader.train))
    counts = []

    def step():
        counts.append(len(next(data_iter)))

    meter = MemoryMeter("cpu")
    meter.start()
    times = timed(step, args.num_iter, args.warmup, "cpu", "data")
    return {
        **_summary(times, float(np.mean(counts[args.warmup :]))),
        "batch_size": counts[-1],
        **meter.stop(),
    }


def synthetic_coco_detections(
    num_images: int, num_classes: int = 80, dets_per_image: int = 100, seed: int = 0
) -> tuple[dict, list[dict]]:
    """A COCO-like ground truth (640x480 images, 1-13 boxes of random classes and sizes, a few crowd boxes)
    and `dets_per_image` scored detections per image in COCO result format: about a third are jittered
    copies of the ground truth (some with the wrong class), the rest random boxes with lower scores."""
    rng = np.random.default_rng(seed)
    width, height = 640, 480
    images = [
        {"id": i + 1, "width": width, "height": height, "file_name": f"{i + 1:012d}.jpg"}
        for i in range(num_images)
    ]
    categories = [{"id": c + 1, "name": f"class_{c + 1}"} for c in range(num_classes)]
    annotations, detections = [], []

    def random_boxes(n):
        wh = np.exp(rng.uniform(np.log(6), np.log(400), size=(n, 2)))
        wh = np.minimum(wh, [width - 1, height - 1])
        xy = rng.uniform(0, 1, size=(n, 2)) * ([width, height] - wh)
        return np.concatenate([xy, wh], axis=1)

    for image in images:
        num_gt = int(rng.integers(1, 14))
        gt = random_boxes(num_gt)
        gt_classes = rng.integers(1, num_classes + 1, size=num_gt)
        crowd = rng.random(num_gt) < 0.02
        for box, cls, is_crowd in zip(gt, gt_classes, crowd):
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": int(cls),
                                "bbox": box.round(2).tolist(), "area": float(box[2] * box[3]),
                                "iscrowd": int(is_crowd)})  # fmt: skip
        num_hits = min(dets_per_image, 3 * num_gt)
        source = rng.integers(0, num_gt, size=num_hits)
        hits = gt[source] + rng.normal(0, 0.08, size=(num_hits, 4)) * np.repeat(gt[source, 2:], 2, axis=1)
        hits[:, 2:] = np.maximum(hits[:, 2:], 1.0)
        hit_classes = np.where(
            rng.random(num_hits) < 0.8, gt_classes[source], rng.integers(1, num_classes + 1, size=num_hits)
        )
        misses = random_boxes(dets_per_image - num_hits)
        boxes = np.concatenate([hits, misses])
        classes = np.concatenate([hit_classes, rng.integers(1, num_classes + 1, size=len(misses))])
        scores = np.concatenate([rng.uniform(0.3, 1.0, num_hits), rng.uniform(0.0, 0.5, len(misses))])
        for box, cls, score in zip(boxes.round(2).tolist(), classes.tolist(), scores.round(5).tolist()):
            detections.append({"image_id": image["id"], "category_id": cls, "bbox": box, "score": score})
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def bench_coco_eval(args) -> dict:
    from detrex.evaluation.coco_evaluation import coco_from_dict, evaluate_predictions_on_coco

    dataset, detections = synthetic_coco_detections(args.num_images)
    coco_gt = coco_from_dict(dataset)
    result = {"num_images": args.num_images, "num_detections": len(detections)}
    backends = {"pycocotools": False}
    if importlib.util.find_spec("faster_coco_eval") is not None:
        backends["faster_coco_eval"] = True
    stats = {}
    for name, fast in backends.items():
        start = time.perf_counter()
        stats[name] = evaluate_predictions_on_coco(coco_gt, detections, use_fast_impl=fast).stats[:12] * 100
        result[f"{name}_s"] = time.perf_counter() - start
        result[f"{name}_AP"] = float(stats[name][0])
    if len(stats) == 2:
        result["speedup"] = result["pycocotools_s"] / result["faster_coco_eval_s"]
        result["max_abs_diff_ap_points"] = float(
            np.abs(stats["pycocotools"] - stats["faster_coco_eval"]).max()
        )
    return result


def format_table(results: dict) -> str:
    """One row per metric; a failed task's reason is shortened here and printed whole by format_failures."""
    rows = []
    for task, metrics in results.items():
        for key, value in metrics.items():
            if key == "error":
                value = value.splitlines()[0]
                value = value if len(value) <= 100 else value[:80] + "... (in full below)"
            rows.append([task, key, f"{value:.4g}" if isinstance(value, float) else value])
    return tabulate(rows, headers=["task", "metric", "value"], tablefmt="pipe")


def format_failures(results: dict) -> str:
    """The whole reason of each failed task, one paragraph per task ("" when none failed)."""
    return "\n".join(f"task {task!r} failed: {m['error']}" for task, m in results.items() if "error" in m)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "cpu"


def run_isolated(args, tasks: tuple[str, ...]) -> dict:
    """Each task in a fresh `python tools/benchmark.py` process with the same settings."""
    results = {}
    for task in tasks:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, f"{task}.json")
            argv = [sys.executable, os.path.abspath(__file__), "--config-file", args.config_file]
            argv += ["--task", task, "--num-iter", str(args.num_iter), "--warmup", str(args.warmup)]
            argv += ["--output", out]
            if args.input_size is not None:
                argv += ["--input-size", "x".join(map(str, args.input_size))]
            if args.train_size is not None:
                argv += ["--train-size", ",".join("x".join(map(str, s)) for s in args.train_size)]
            argv += [f"--{flag}" for flag in ("amp", "compile") if getattr(args, flag)]
            argv += ["--threads", str(args.threads)] if args.threads else []
            proc = subprocess.run(
                argv + list(args.opts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
            if os.path.isfile(out):  # also when the task failed: its reason is in the JSON (exit status 1)
                with open(out) as f:
                    results[task] = json.load(f)["results"][task]
                continue
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            results[task] = {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return results


def run_tasks(cfg, args, tasks: tuple[str, ...], device: str) -> dict:
    device_type = "cuda" if device.startswith("cuda") else "cpu"

    def autocast():
        return torch.autocast(device_type, dtype=torch.bfloat16) if args.amp else nullcontext()

    cpu_kernels.set_cpu_kernels(bool(OmegaConf.select(cfg, "train.cpu_kernels", default=True)))
    if device_type == "cpu":
        cpu_kernels.prepare_cpu_process()  # as tools/train_net.py on the CPU
    model = instantiate(cfg.model).to(device) if set(tasks) & {"eval", "train", "kernels"} else None
    if model is not None and args.compile:
        torch._inductor.config.freezing = True  # inference graphs: weights as constants, pre-packed convs
        model = torch.compile(model)
    results = {}
    for task in tasks:
        try:
            if task == "eval":
                results[task] = bench_eval(cfg, model, args, device, autocast)
            elif task == "train":
                results[task] = bench_train(cfg, model, args, device, autocast)
            elif task == "kernels":
                results[task] = bench_kernels(cfg, model, args, autocast)
            else:
                results[task] = bench_data(cfg, args)
        except Exception as e:  # e.g. "data" without a dataset folder; reported, the other tasks still run
            print(f"benchmark: task {task!r} failed: {type(e).__name__}: {e}", file=sys.stderr)
            results[task] = {"error": f"{type(e).__name__}: {e}"}
            continue
        results[task]["process_peak_rss_mb"] = process_peak_rss_mb()
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.num_iter < 1 or args.warmup < 0:
        parser.error(f"need --num-iter >= 1 and --warmup >= 0, got {args.num_iter} and {args.warmup}")
    try:
        if args.input_size is not None:
            args.input_size = parse_size(args.input_size)
        if args.train_size is not None:
            args.train_size = [parse_size(s, "--train-size") for s in args.train_size.split(",")]
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.task in EXTRA_TASKS:
        if args.num_images < 1:
            parser.error(f"need --num-images >= 1, got {args.num_images}")
        results = {args.task: bench_coco_eval(args)}
        print(format_table(results))
        summary = {"device": cpu_name(), "cpu_count": os.cpu_count(), "results": results}
        _write_summary(summary, args.output)
        return summary
    if args.config_file is None:
        parser.error(f"--task {args.task} needs --config-file")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    device = OmegaConf.select(cfg, "train.device", default="cpu") or "cpu"
    check_device(device)

    tasks = TASKS if args.task == "all" else (args.task,)
    results = run_isolated(args, tasks) if args.isolate else run_tasks(cfg, args, tasks, device)
    print(format_table(results))
    if format_failures(results):
        print(format_failures(results))
    summary = {
        "config_file": args.config_file,
        "overrides": list(args.opts),
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp": "bfloat16" if args.amp else None,
        "compile": args.compile,
        "cpu_kernels": sorted(cpu_kernels.active_kernels()),
        "isolated": args.isolate,
        "num_iter": args.num_iter,
        "warmup": args.warmup,
        "results": results,
    }
    _write_summary(summary, args.output)
    return summary


def _write_summary(summary: dict, output: str | None) -> None:
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {output}")


if __name__ == "__main__":
    failed = [task for task, res in main()["results"].items() if "error" in res]
    sys.exit(1 if failed else 0)  # after the table and the JSON of the tasks that ran

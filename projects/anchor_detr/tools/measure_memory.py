"""Training memory of Anchor-DETR with RCDA vs standard attention (one step, batch 1).

    python -m projects.anchor_detr.tools.measure_memory [--height 800 --width 1216] [--device cpu]

Attention variants (encoder self-attention and decoder cross-attention):
  RCDA                   row-column decoupled attention (the default)
  MHA                    attention_type="nn.MultiheadAttention" as this project calls it (need_weights=False:
                         PyTorch's fused scaled-dot-product kernels, no attention map kept)
  MHA, weights returned  the same modules called with need_weights=True, as the reference calls them: the
                         (heads x queries x keys) map is materialised and kept for backward
Each setting (C5 / DC5 x variant) runs in a fresh process, so peak-memory numbers do not mix. Reported:
  saved MiB        bytes autograd keeps for the backward pass (unique storages), whole model
  transformer MiB  the part saved inside the transformer (where the attention type matters)
  peak RSS MiB     the process's peak resident memory minus its resident memory before the step
  CUDA peak MiB    torch.cuda.max_memory_allocated during the step (CUDA runs)
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys

import torch

from detrex.config import LazyConfig, instantiate
from detrex.structures import Boxes, Instances

MODEL_CONFIG = "projects/anchor_detr/configs/models/anchor_detr_r50.py"
MiB = 2**20


class SavedTensorMeter:
    """Records the distinct storages autograd saves for backward while active (except those in `exclude`:
    the model's own parameters and buffers, which exist anyway), and separately those saved while
    `inside` is set."""

    def __init__(self, exclude: set[int]):
        self.exclude = exclude
        self.inside = False
        self.storages: dict[int, int] = {}
        self.inside_storages: dict[int, int] = {}
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.exclude:
            self.storages[storage.data_ptr()] = storage.nbytes()
            if self.inside:
                self.inside_storages[storage.data_ptr()] = storage.nbytes()
        return t

    def __enter__(self):
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def activation_bytes(model: torch.nn.Module, batched_inputs: list[dict]) -> dict[str, int]:
    """One training forward + backward; bytes saved for backward by the whole model and by its transformer."""
    model.train()
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    meter = SavedTensorMeter(own)

    def set_inside(value):
        def hook(*_):
            meter.inside = value

        return hook

    hooks = [
        model.transformer.register_forward_pre_hook(set_inside(True)),
        model.transformer.register_forward_hook(set_inside(False)),
    ]
    try:
        with meter:
            losses = model(batched_inputs)
        sum(losses.values()).backward()
    finally:
        for h in hooks:
            h.remove()
    return {"saved": sum(meter.storages.values()), "transformer": sum(meter.inside_storages.values())}


def _peak_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux: fall back to the peak so far (the growth is then a lower bound)
        return _peak_rss_bytes()


VARIANTS = {"RCDA": "RCDA", "MHA": "nn.MultiheadAttention", "MHA, weights returned": "nn.MultiheadAttention"}


def _return_attention_weights(attn: torch.nn.MultiheadAttention) -> None:
    forward = attn.forward
    attn.forward = lambda *args, **kwargs: forward(*args, **{**kwargs, "need_weights": True})


def measure(variant: str, dilation: bool, height: int, width: int, device: str) -> dict:
    """Build the R50 model from its config with the given attention variant and dilation; one training
    step on a height x width image."""
    torch.manual_seed(0)
    cfg = LazyConfig.load(MODEL_CONFIG)
    cfg.model.transformer.attention_type = VARIANTS[variant]
    cfg.model.backbone.dilation = dilation
    model = instantiate(cfg.model).to(device)
    if variant == "MHA, weights returned":
        for layer in model.transformer.encoder_layers:
            _return_attention_weights(layer.self_attn)
        for layer in model.transformer.decoder_layers:
            _return_attention_weights(layer.cross_attn)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    boxes = Boxes(torch.tensor([[100.0, 120.0, 500.0, 600.0], [600.0, 50.0, 1100.0, 700.0]]))
    batch = [{"image": image, "height": height, "width": width,
              "instances": Instances((height, width), gt_boxes=boxes, gt_classes=torch.tensor([1, 7]))}]  # fmt: skip
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    rss_before = _current_rss_bytes()
    result = activation_bytes(model, batch)
    result["peak_rss_growth"] = _peak_rss_bytes() - rss_before
    if device.startswith("cuda"):
        result["cuda_peak"] = torch.cuda.max_memory_allocated() - start
    return result


def _worker(args, queue):
    queue.put(measure(*args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1216)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--features", nargs="+", default=["C5", "DC5"], choices=["C5", "DC5"])
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    print(f"Anchor-DETR R50, one training step, batch 1, {args.height} x {args.width}, {args.device}")
    print("| features | attention | saved MiB | transformer MiB | peak RSS MiB | CUDA peak MiB |")
    print("|---|---|---|---|---|---|")
    for features in args.features:
        for variant in args.variants:
            queue = ctx.Queue()
            setting = (variant, features == "DC5", args.height, args.width, args.device)
            proc = ctx.Process(target=_worker, args=(setting, queue))
            proc.start()
            r = queue.get()
            proc.join()
            cuda = f"{r['cuda_peak'] / MiB:.0f}" if "cuda_peak" in r else "-"
            print(
                f"| {features} | {variant} | {r['saved'] / MiB:.0f} "
                f"| {r['transformer'] / MiB:.0f} | {r['peak_rss_growth'] / MiB:.0f} | {cuda} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

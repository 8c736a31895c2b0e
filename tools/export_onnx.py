r"""Export a detector to ONNX and check the exported model against PyTorch with onnxruntime.

    python tools/export_onnx.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --output conditional_detr.onnx --input-size 800x1216 train.init_checkpoint=/path/to/model_final.pth

The ONNX model (see detrex.utils.analysis.ExportableDetector):
  inputs   images  float32 [1, 3, H, W]: RGB, 0..255, NOT normalised (the model's mean/std are inside),
                   the picture at the top-left, resized as the test loader does (or smaller)
           mask    bool [1, H, W]: True on padding (pixels right of / below the picture)
  outputs  boxes   float32 [1, k, 4]: x0, y0, x1, y1 in input pixels (divide by the resize factor
                   to get original-image pixels), clipped to the unpadded part
           scores  float32 [1, k]: sigmoid probabilities, best first (no threshold applied)
           classes int64 [1, k]: contiguous class ids (the dataset's thing_classes order)
Limits: fixed batch size 1 and fixed H x W (pad smaller images, downscale larger ones); k is fixed
(--topk, default the model's select_box_nums_for_evaluation); the export runs on the CPU in float32.
The check runs both models on --num-samples test-loader images (random images when the test dataset
is not available) and fails (exit status 1) when scores or boxes / max(H, W) differ by more than --atol.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tabulate import tabulate

from detrex.config import LazyConfig, instantiate
from detrex.utils.analysis import ExportableDetector, quiet_tracing


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="lazy config (.py/.yaml)")
    parser.add_argument("--output", required=True, metavar="ONNX", help="where to write the .onnx file")
    parser.add_argument(
        "--input-size", default=None, metavar="HxW", help="default: the test resize's short x max"
    )
    parser.add_argument("--topk", type=int, default=None, help="detections per image in the output")
    parser.add_argument("--num-samples", type=int, default=2, help="images for the onnxruntime check")
    parser.add_argument("--atol", type=float, default=1e-3, help="tolerance of the check (see above)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--input-size {text!r}: expected HxW, e.g. 800x1216") from None
    if h < 32 or w < 32:
        raise ValueError(f"--input-size {text!r}: height and width must be at least 32")
    return h, w


def default_input_size(cfg) -> tuple[int, int]:
    """(short edge, max size) of the test loader's ResizeShortestEdge: every landscape image fits."""
    for aug in OmegaConf.select(cfg, "dataloader.test.mapper.augmentation", default=None) or []:
        short, longest = aug.get("short_edge_length"), aug.get("max_size")
        if short is not None and longest is not None:
            short = short if isinstance(short, int) else max(short)
            return int(short), int(longest)
    raise ValueError(
        "cannot tell the input size from dataloader.test.mapper.augmentation; pass --input-size HxW"
    )


def fit(image: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Place a [3, h, w] image at the top-left of an HxW canvas (downscaled if larger); returns the
    float [1, 3, H, W] input and its bool [1, H, W] padding mask."""
    h, w = image.shape[-2:]
    scale = min(1.0, size[0] / h, size[1] / w)
    image = image.float()[None]
    if scale < 1.0:
        new = (max(1, int(h * scale)), max(1, int(w * scale)))
        image = F.interpolate(image, size=new, mode="bilinear", align_corners=False, antialias=True).round()
    h, w = image.shape[-2:]
    canvas = torch.zeros(1, 3, *size)
    canvas[:, :, :h, :w] = image
    mask = torch.ones(1, *size, dtype=torch.bool)
    mask[:, :h, :w] = False
    return canvas, mask


def sample_inputs(cfg, size: tuple[int, int], num: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    try:
        loader = instantiate(cfg.dataloader.test)
        images = [x["image"] for _, batch in zip(range(num), loader) for x in batch][:num]
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"test dataset unavailable ({type(e).__name__}: {e}); checking on random images")
        generator = torch.Generator().manual_seed(0)
        images = [
            torch.randint(0, 256, (3, *size), generator=generator, dtype=torch.uint8) for _ in range(num)
        ]
    return [fit(image, size) for image in images]


def export(wrapper: ExportableDetector, sample, path: str, opset: int) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad(), quiet_tracing():
        torch.onnx.export(
            wrapper,
            sample,
            path,
            input_names=["images", "mask"],
            output_names=["boxes", "scores", "classes"],
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency; shapes are fixed anyway
        )
    import onnx

    onnx.checker.check_model(onnx.load(path))


def run_onnx(session, images: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    return session.run(None, {"images": images.numpy(), "mask": mask.numpy()})


def compare(ref: list[np.ndarray], out: list[np.ndarray], atol: float) -> dict:
    """Max |score| and box differences. Detections are paired by class, then by closest box among the
    candidates of (almost) equal score, since near-ties may come out of top-k in another order; those
    tied with the k-th score may be swapped with one just below it, and are not paired."""
    (rb, rs, rc), (ob, os_, oc) = [r[0] for r in ref], [o[0] for o in out]
    score_diff = float(np.abs(np.sort(rs) - np.sort(os_)).max())
    box_diff = 0.0
    cutoff = max(rs.min(), os_.min()) + atol
    for j in np.flatnonzero(os_ > cutoff):
        candidates = (rc == oc[j]) & (np.abs(rs - os_[j]) <= atol)
        if not candidates.any():
            return {"score": score_diff, "box": float("inf")}
        box_diff = max(box_diff, float(np.abs(rb[candidates] - ob[j]).max(axis=1).min()))
    return {"score": score_diff, "box": box_diff}


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    if args.num_samples < 1 or args.atol <= 0 or (args.topk is not None and args.topk < 1):
        parser.error("need --num-samples >= 1, --atol > 0 and --topk >= 1")
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    try:
        size = parse_size(args.input_size) if args.input_size else default_input_size(cfg)
    except ValueError as e:
        parser.error(str(e))
    try:
        import onnxruntime
    except ImportError:
        parser.error("the check needs onnxruntime (and export needs onnx): pip install onnx onnxruntime")

    model = instantiate(cfg.model).eval()  # exported on the CPU whatever train.device says
    weights = OmegaConf.select(cfg, "train.init_checkpoint", default="")
    if weights:
        from detrex.checkpoint import DetectionCheckpointer

        DetectionCheckpointer(model).load(weights)
    else:
        print("WARNING: train.init_checkpoint is empty: exporting randomly initialised weights")
    wrapper = ExportableDetector(model, topk=args.topk).eval()
    samples = sample_inputs(cfg, size, args.num_samples)
    export(wrapper, samples[0], args.output, args.opset)

    session = onnxruntime.InferenceSession(args.output, providers=["CPUExecutionProvider"])
    rows, worst = [], 0.0
    for i, (images, mask) in enumerate(samples):
        with torch.no_grad():
            ref = [t.numpy() for t in wrapper(images, mask)]
        diff = compare(ref, run_onnx(session, images, mask), args.atol)
        worst = max(worst, diff["score"], diff["box"] / max(size))
        valid = (~mask[0]).sum(0).max().item(), (~mask[0]).sum(1).max().item()  # unpadded h, w
        rows.append([i, f"{valid[0]}x{valid[1]}", f"{diff['score']:.3g}", f"{diff['box']:.3g}"])
    print(tabulate(rows, headers=["sample", "image in input", "max |score diff|", "max |box diff| px"]))
    k = wrapper.topk
    print(f"wrote {args.output}: input {size[0]}x{size[1]}, top-{k} detections; max abs diff {worst:.3g}")
    if worst > args.atol:
        print(f"ERROR: onnxruntime and PyTorch differ by {worst:.3g} > --atol {args.atol}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

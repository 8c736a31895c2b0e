r"""Draw where the decoder looks: the cross-attention of the top detections, and Anchor-DETR's anchor points.

    python tools/visualize_attention.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --input photo.jpg photos/ "more/*.png" --output attention/ --topk 4 \
        train.init_checkpoint=/path/to/model_final.pth train.device=cpu

Inputs are files, folders or quoted glob patterns, read and resized as demo/demo.py does. For each image,
<output>/<name>.png shows the --topk best detections (one per query, score >= --confidence-threshold), one
row each: the box, class and score over the decoder layer's cross-attention (--layer, default the last),
averaged over heads, stretched to the image, as a colour map over the dimmed image. Conditional-DETR: the
spatial-query part, the content part and the full attention; Anchor-DETR (RCDA): the row (x) and column (y)
attention and their product, with the query's anchor point marked; Anchor-DETR with nn.MultiheadAttention:
the full attention. --anchors (Anchor-DETR) also writes <name>_anchors.png: the anchor points over the unit
square, and over the image with a line from each detection's anchor point to its box, coloured by pattern.
With a single input, an --output ending in .png names the picture itself.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from detrex.checkpoint import CheckpointFormatError, IncompatibleCheckpointError  # noqa: E402
from detrex.config import LazyConfig  # noqa: E402
from detrex.data import ImageReadError, read_image  # noqa: E402
from detrex.engine.launch import check_device  # noqa: E402
from detrex.engine.predictor import DefaultPredictor, class_metadata  # noqa: E402
from detrex.layers import box_cxcywh_to_xyxy  # noqa: E402
from detrex.utils.attention_maps import record_attention, resize_to_image, top_queries  # noqa: E402
from detrex.utils.image_files import expand_inputs, output_paths  # noqa: E402
from detrex.utils.visualizer import class_color  # noqa: E402

DEFAULT_OUTPUT = os.path.join("output", "attention")
PANEL_TITLES = {
    "spatial": "spatial query",
    "content": "content",
    "full": "full attention",
    "row": "row (x)",
    "column": "column (y)",
    "product": "row x column",
}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="lazy config (.py/.yaml)")
    parser.add_argument("--input", nargs="+", required=True, help="image files, folders or glob patterns")
    parser.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help=f"output folder, or a .png file name for one image (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--topk", type=int, default=4, help="detections drawn per image (default: 4)")
    parser.add_argument("--layer", type=int, default=-1, help="decoder layer, 0-based; -1: the last")
    parser.add_argument("--confidence-threshold", type=float, default=0.3, help="minimum score to draw")
    parser.add_argument("--anchors", action="store_true", help="Anchor-DETR: also draw the anchor points")
    parser.add_argument(
        "--dpi", type=int, default=100, help="picture resolution, pixels per inch (default: 100)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def picture_paths(inputs: list[str], output: str) -> list[str]:
    """output/<name>.png per input; photo.jpg next to photo.png keep their extensions (photo.jpg.png)."""
    paths = output_paths(inputs, output)
    pngs = [os.path.splitext(p)[0] + ".png" for p in paths]
    return pngs if len(set(pngs)) == len(pngs) else [p + ".png" for p in paths]


def anchor_points(model) -> torch.Tensor | None:
    """(Q, 2) normalised (x, y) anchor point of every query of an Anchor-DETR, else None."""
    transformer = getattr(model, "transformer", None)
    if not hasattr(transformer, "anchor_points"):
        return None
    return transformer.anchor_points(1, model.device)[0]


@torch.no_grad()
def attend(predictor: DefaultPredictor, image: np.ndarray, layer: int, topk: int, threshold: float) -> dict:
    """Detect on one RGB image and record the decoder layer's attention. Returns the detections as numpy
    arrays ("queries", "scores", "classes", "boxes" xyxy in image pixels), "maps" {name: (n, H, W)} over the
    image, and "anchors" (Q, 2) in image pixels for Anchor-DETR (else None)."""
    model = predictor.model
    inputs = predictor.preprocess(image)
    height, width = inputs["height"], inputs["width"]
    with record_attention(model, layers=[layer]) as maps:
        images = model.preprocess_image([inputs])
        outputs = model.forward_images(images)
    queries, scores, classes = top_queries(outputs["pred_logits"][0], topk, threshold)
    scale = torch.tensor([width, height, width, height], device=scores.device)
    boxes = (box_cxcywh_to_xyxy(outputs["pred_boxes"][0, queries].float()) * scale).clamp(min=0)
    boxes = torch.minimum(boxes, scale)  # clipped to the image, as the model's detections are
    recorded = {name: m[0, queries] for name, m in maps[0].items() if name != "layer"}  # (n, ., .) each
    size = torch.broadcast_shapes(*(m.shape[-2:] for m in recorded.values()))  # (h, w): row x column
    feature_mask = model.feature_padding_mask(images, size)[0]  # (h, w), True on padding
    valid = (int((~feature_mask[:, 0]).sum()), int((~feature_mask[0, :]).sum()))
    result = {
        "layer": maps[0]["layer"],
        "num_layers": len(model.decoder_cross_attentions()),
        "queries": queries.cpu().numpy(),
        "scores": scores.float().cpu().numpy(),
        "classes": classes.cpu().numpy(),
        "boxes": boxes.cpu().numpy(),
        "maps": {
            name: resize_to_image(m, valid, (height, width)).cpu().numpy() for name, m in recorded.items()
        },
        "anchors": None,
    }
    points = anchor_points(model)
    if points is not None:
        result["anchors"] = (
            (points.float() * torch.tensor([width, height], device=points.device)).cpu().numpy()
        )
        result["num_patterns"] = model.transformer.num_pattern
        result["points_kind"] = model.transformer.spatial_prior
    return result


def _class_name(metadata, class_id: int) -> str:
    names = getattr(metadata, "thing_classes", None) if metadata is not None else None
    return names[class_id] if names and 0 <= class_id < len(names) else f"class {class_id}"


def _draw_box(ax, box, color, linewidth: float = 1.5) -> None:
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=linewidth))


def overlay(attention: np.ndarray) -> np.ndarray:
    """(H, W) weights -> RGBA: a colour map of the weights relative to their maximum, as opaque as strong, so
    weak attention leaves the dimmed image visible."""
    strength = attention / max(float(attention.max()), 1e-12)
    rgba = plt.get_cmap("jet")(strength)
    rgba[..., 3] = 0.8 * strength
    return rgba


def draw_attention(image: np.ndarray, result: dict, metadata, title: str, path: str, dpi: int = 100) -> None:
    """One row per detection, one panel per map: the map (normalised to its maximum) over the dimmed image,
    the detection's box, and the query's anchor point when the model has them."""
    names = list(result["maps"])
    rows = max(len(result["queries"]), 1)
    height, width = image.shape[:2]
    panel = 3.0  # inches per panel's longer side
    scale = panel / max(height, width)
    fig, axes = plt.subplots(
        rows, len(names), figsize=(len(names) * width * scale, rows * (height * scale + 0.7)), squeeze=False
    )
    dimmed = (image * 0.5).astype(np.uint8)
    for ax in axes.flat:
        ax.imshow(dimmed)
        ax.set_axis_off()
    if len(result["queries"]) == 0:
        axes[0, 0].set_title("no detection above the threshold", fontsize=9)
    for row, (query, score, cls, box) in enumerate(
        zip(result["queries"], result["scores"], result["classes"], result["boxes"])
    ):
        color = np.array(class_color(int(cls))) / 255.0
        label = f"#{row + 1} {_class_name(metadata, int(cls))} {score:.2f} (query {query})"
        for col, name in enumerate(names):
            ax = axes[row, col]
            attention = result["maps"][name][row]
            ax.imshow(overlay(attention))
            _draw_box(ax, box, color)
            if result["anchors"] is not None:
                x, y = result["anchors"][query]
                ax.plot([x], [y], marker="*", markersize=11, color="white", markeredgecolor="black")
            ax.set_title(f"{label}\n{PANEL_TITLES.get(name, name)}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def draw_anchors(image: np.ndarray, result: dict, metadata, title: str, path: str, dpi: int = 100) -> None:
    """Left: the anchor points over the unit square (shared by every pattern). Right: the same points over
    the image, and for each detection a line from its query's anchor point to its box, coloured by the
    query's pattern."""
    height, width = image.shape[:2]
    anchors = result["anchors"]
    num_points = len(anchors) // result["num_patterns"]
    fig, (square, picture) = plt.subplots(1, 2, figsize=(9.0, 4.6))
    unit = anchors[:num_points] / np.array([width, height])
    square.scatter(unit[:, 0], unit[:, 1], s=10, color="black")
    square.set(xlim=(0, 1), ylim=(1, 0), aspect="equal", xlabel="x", ylabel="y")  # y down, as in images
    square.set_title(
        f"{num_points} {result['points_kind']} anchor points, shared by {result['num_patterns']} patterns",
        fontsize=9,
    )
    picture.imshow((image * 0.6).astype(np.uint8))
    picture.scatter(anchors[:num_points, 0], anchors[:num_points, 1], s=8, color="white", alpha=0.7)
    colors = plt.get_cmap("tab10")
    drawn = set()
    for query, score, cls, box in zip(
        result["queries"], result["scores"], result["classes"], result["boxes"]
    ):
        pattern = int(query) // num_points
        color = colors(pattern % 10)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x, y = anchors[query]
        picture.plot([x, cx], [y, cy], color=color, linewidth=1.5)
        picture.plot([x], [y], marker="o", markersize=6, color=color, markeredgecolor="white")
        _draw_box(picture, box, color)
        picture.text(
            box[0],
            box[1],
            f"{_class_name(metadata, int(cls))} {score:.2f}",
            color="white",
            fontsize=7,
            va="bottom",
            bbox={"facecolor": color, "pad": 1, "linewidth": 0},
        )
        drawn.add(pattern)
    handles = [
        plt.Line2D([], [], color=colors(p % 10), marker="o", label=f"pattern {p}") for p in sorted(drawn)
    ]
    if handles:
        picture.legend(handles=handles, fontsize=7, loc="lower right")
    picture.set_axis_off()
    picture.set_title("detections: anchor point -> box", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def run(predictor, inputs: list[str], outputs: list[str], args, metadata) -> list[str]:
    """Draw each input; a file that cannot be read is skipped with a one-line warning. Returns the skipped."""
    skipped = []
    for path, out in zip(tqdm(inputs, desc="images", disable=len(inputs) < 2), outputs):
        try:
            image = read_image(path, format="RGB")
        except (FileNotFoundError, ImageReadError) as e:
            tqdm.write(f"WARNING: skipped {path}: {e}", file=sys.stderr)
            skipped.append(path)
            continue
        result = attend(predictor, image, args.layer, args.topk, args.confidence_threshold)
        layer = f"decoder layer {result['layer'] + 1} of {result['num_layers']}"
        draw_attention(image, result, metadata, f"{os.path.basename(path)}: {layer}", out, args.dpi)
        written = [out]
        if args.anchors:
            anchors_out = os.path.splitext(out)[0] + "_anchors.png"
            draw_anchors(image, result, metadata, os.path.basename(path), anchors_out, args.dpi)
            written.append(anchors_out)
        tqdm.write(f"{path}: {len(result['queries'])} detections -> {', '.join(written)}")
    return skipped


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    if args.topk < 1:
        parser.error(f"--topk must be at least 1, got {args.topk}")
    if args.dpi < 10:
        parser.error(f"--dpi must be at least 10, got {args.dpi}")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    # --input takes several values, so trailing overrides right after it land there: hand them back
    overrides = [x for x in args.input if "=" in x and not os.path.exists(x)]
    args.input = [x for x in args.input if x not in overrides]
    args.opts = overrides + args.opts
    try:
        inputs = expand_inputs(args.input)
    except FileNotFoundError as e:
        parser.error(str(e))
    single_file = len(inputs) == 1 and args.output.lower().endswith(".png")
    outputs = [args.output] if single_file else picture_paths(inputs, args.output)

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    try:
        check_device(OmegaConf.select(cfg, "train.device", default="cpu") or "cpu")
    except RuntimeError as e:
        parser.error(str(e))
    try:
        predictor = DefaultPredictor(cfg, input_format="RGB")  # read_image gives RGB
    except (FileNotFoundError, CheckpointFormatError, IncompatibleCheckpointError) as e:
        print(f"error: train.init_checkpoint: {e}", file=sys.stderr)
        return 1
    num_layers = len(predictor.model.decoder_cross_attentions())
    if not -num_layers <= args.layer < num_layers:
        parser.error(
            f"--layer {args.layer}: the decoder has {num_layers} layers (0 .. {num_layers - 1}, -1: last)"
        )
    if args.anchors and anchor_points(predictor.model) is None:
        parser.error(f"--anchors: {type(predictor.model).__name__} has no anchor points (Anchor-DETR has)")
    os.makedirs(os.path.dirname(os.path.abspath(outputs[0])), exist_ok=True)
    skipped = run(predictor, inputs, outputs, args, class_metadata(cfg))
    if len(skipped) == len(inputs):
        print(f"error: none of the {len(inputs)} input image(s) could be read", file=sys.stderr)
        return 1
    print(f"results written to {outputs[0] if single_file else os.path.abspath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

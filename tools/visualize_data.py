r"""Draw ground-truth boxes of the training data, as annotated or as the model sees them.

    python tools/visualize_data.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --source dataloader --output vis_data/ --num-images 20

--source annotation: the raw images of `dataloader.train.dataset` with their annotations.
--source dataloader: the train loader's output: augmented (flipped, resized, cropped) image tensors
with their `instances`, exactly what the model trains on. Crowd boxes are not drawn (training drops them).
"""

from __future__ import annotations

import argparse
import os
import sys

from omegaconf import OmegaConf
from tqdm import tqdm

from detrex.config import LazyConfig, instantiate
from detrex.data import ImageReadError, MetadataCatalog, get_detection_dataset_dicts, read_image
from detrex.utils.dataset_check import config_dataset_names
from detrex.utils.visualizer import Visualizer


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="lazy config (.py/.yaml)")
    parser.add_argument("--source", required=True, choices=("annotation", "dataloader"), help="what to draw")
    parser.add_argument("--output", required=True, help="folder for the pictures")
    parser.add_argument("--num-images", type=int, default=10, help="how many images to draw")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def train_metadata(cfg):
    names = config_dataset_names(cfg, "train")
    return MetadataCatalog.get(names[0]) if names else None


def draw_annotations(cfg, output: str, num_images: int) -> list[str]:
    """Raw images with their annotation boxes; files <image file stem>.png (lossless: thin lines stay exact).
    An image file that cannot be read is skipped with a warning, and the next one is drawn instead."""
    dataset = instantiate(cfg.dataloader.train.dataset)
    if isinstance(dataset, str) or (dataset and isinstance(dataset[0], str)):  # names, not dicts
        dataset = get_detection_dataset_dicts(dataset)
    metadata = train_metadata(cfg)
    written, skipped = [], []
    with tqdm(total=min(num_images, len(dataset)), desc="images") as bar:
        for d in dataset:
            if len(written) == num_images:
                break
            try:
                image = read_image(d["file_name"], format="RGB")
            except (FileNotFoundError, ImageReadError) as e:
                tqdm.write(f"WARNING: skipped image_id {d.get('image_id')}: {e}", file=sys.stderr)
                skipped.append(d["file_name"])
                continue
            path = os.path.join(output, os.path.splitext(os.path.basename(d["file_name"]))[0] + ".png")
            Visualizer(image, metadata).draw_dataset_dict(d).save(path)
            written.append(path)
            bar.update(1)
    if skipped:
        print(f"skipped {len(skipped)} image(s) that could not be read (warnings above)")
    return written


def draw_loader_batches(cfg, output: str, num_images: int) -> list[str]:
    """Train-loader images (after augmentation) with their `instances`; files <image_id>_<k>.png."""
    loader = instantiate(cfg.dataloader.train)
    img_format = OmegaConf.select(cfg, "dataloader.train.mapper.img_format", default="RGB")
    metadata = train_metadata(cfg)
    written = []
    with tqdm(total=num_images, desc="images") as bar:
        for batch in loader:
            for x in batch:
                image = x["image"].permute(1, 2, 0).numpy()  # (H, W, C), uint8
                if img_format == "BGR":
                    image = image[:, :, ::-1]
                path = os.path.join(output, f"{x.get('image_id', 'image')}_{len(written)}.png")
                Visualizer(image, metadata).draw_ground_truth(x["instances"]).save(path)
                written.append(path)
                bar.update(1)
                if len(written) == num_images:
                    return written
    return written


def main(argv: list[str] | None = None) -> list[str]:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f"--num-images must be >= 1, got {args.num_images}")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    os.makedirs(args.output, exist_ok=True)
    draw = draw_annotations if args.source == "annotation" else draw_loader_batches
    written = draw(cfg, args.output, args.num_images)
    print(f"wrote {len(written)} picture(s) to {os.path.abspath(args.output)}")
    return written


if __name__ == "__main__":
    sys.exit(0 if main() else 1)  # 1: not one picture (every image unreadable, or an empty dataset)

"""The published R50 configs start training on COCO: a tiny fake COCO folder under $DETREX_DATASETS.

Each run trains two iterations of the full-size model on CPU (images resized as in the real recipe),
initialises the backbone from an ImageNet file in torchvision's format, checkpoints, and evaluates.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from detrex.data.datasets.builtin_meta import COCO_CATEGORIES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _write_split(root: Path, split: str, sizes: list[tuple[int, int]], first_id: int) -> None:
    rng = np.random.default_rng(first_id)
    (root / f"{split}2017").mkdir(parents=True)
    images, annotations = [], []
    for i, (h, w) in enumerate(sizes):
        image_id = first_id + i
        pixels = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{split}2017" / f"{image_id:012d}.jpg")
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": h, "width": w})
        for j, category in enumerate((1, 18, 90)):  # person, dog, toothbrush: first, middle, last ids
            x, y = 20.0 + 60 * j, 30.0 + 40 * j
            annotations.append(
                {
                    "id": len(annotations) + 1 + 1000 * first_id,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x, y, 80.0, 60.0],
                    "area": 4800.0,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": cid, "name": name, "supercategory": "thing"} for cid, name in COCO_CATEGORIES]
    (root / "annotations").mkdir(exist_ok=True)
    payload = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(payload))


@pytest.fixture(scope="module")
def fake_coco(tmp_path_factory):
    datasets = tmp_path_factory.mktemp("datasets")
    _write_split(datasets / "coco", "train", [(480, 640), (427, 640)], first_id=1)
    _write_split(datasets / "coco", "val", [(480, 640)], first_id=100)
    weights = tmp_path_factory.mktemp("weights") / "resnet50-0676ba61.pth"  # torchvision's file name
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    return datasets, weights


@pytest.mark.parametrize(
    "config",
    [
        "projects/anchor_detr/configs/anchor_detr_r50_50ep.py",
        "projects/conditional_detr/configs/conditional_detr_r50_50ep.py",
    ],
)
def test_published_config_trains_on_coco_layout(config, fake_coco, tmp_path):
    datasets, weights = fake_coco
    env = dict(os.environ, DETREX_DATASETS=str(datasets), OMP_NUM_THREADS="2")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "tools/train_net.py",
        "--config-file",
        config,
        "train.device=cpu",
        f"train.output_dir={out}",
        f"train.init_checkpoint={weights}",
        "train.max_iter=2",
        "train.checkpointer.period=1",
        "train.eval_period=100",
        "train.log_period=1",
        "dataloader.train.total_batch_size=1",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert (out / "model_final.pth").is_file() and (out / "config.yaml").is_file()
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    losses = [r for r in records if "total_loss" in r]
    assert [r["iteration"] for r in losses] == [0, 1]
    assert all(np.isfinite(r["total_loss"]) for r in losses)
    assert any("bbox/AP" in r for r in records)  # the final evaluation ran on the fake val split
    assert "torchvision" in log.lower()  # the load report names the ImageNet format it converted
    assert (out / "inference" / "coco_instances_results.json").is_file()

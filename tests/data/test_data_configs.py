import pytest
import torch

import detrex.data.transforms as T
from detrex.config import LazyConfig, instantiate
from detrex.data import DatasetCatalog, DetrDatasetMapper, MetadataCatalog, load_coco_json
from detrex.evaluation import COCOEvaluator

CONFIGS = ["configs/common/data/coco_detr.py", "configs/common/data/synthetic.py"]


@pytest.mark.parametrize("path", CONFIGS)
def test_config_structure_and_save_load(path, tmp_path):
    cfg = LazyConfig.load(path)
    assert set(cfg.dataloader) == {"train", "test", "evaluator"}
    assert cfg.dataloader.evaluator.dataset_name == cfg.dataloader.test.dataset.names
    assert cfg.dataloader.test.dataset.filter_empty is False
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    again = LazyConfig.load(str(tmp_path / "config.yaml"))
    assert again.dataloader.train.mapper.augmentation_with_crop[2].crop_size == (
        cfg.dataloader.train.mapper.augmentation_with_crop[2].crop_size
    )
    mapper = instantiate(cfg.dataloader.train.mapper)
    assert isinstance(mapper, DetrDatasetMapper) and mapper.is_train
    kinds = [type(a) for a in mapper.augmentation_with_crop.augs]
    assert kinds == [T.RandomFlip, T.ResizeShortestEdge, T.RandomCrop, T.ResizeShortestEdge]
    evaluator = instantiate(cfg.dataloader.evaluator)
    assert (
        isinstance(evaluator, COCOEvaluator) and evaluator.dataset_name == cfg.dataloader.test.dataset.names
    )


def test_synthetic_config_loaders_on_a_small_dataset(tiny_coco, unique_name):
    """The synthetic config's loaders, pointed at a small registered dataset, give mapped batches."""
    json_file, image_root, _ = tiny_coco
    name = unique_name()
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    cfg = LazyConfig.load("configs/common/data/synthetic.py")
    cfg.dataloader.train.dataset.names = name
    cfg.dataloader.test.dataset.names = name
    cfg.dataloader.train.num_workers = cfg.dataloader.test.num_workers = 0
    cfg.dataloader.train.total_batch_size = 2
    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 2
    for x in batch:
        assert x["image"].dtype == torch.uint8 and x["image"].shape[0] == 3
        assert 160 <= min(x["image"].shape[1:]) and max(x["image"].shape[1:]) <= 320
        assert x["instances"].gt_classes.dtype == torch.int64
    test = [x for b in instantiate(cfg.dataloader.test) for x in b]
    assert [x["image_id"] for x in test] == [10, 11, 12, 13]
    assert all(min(x["image"].shape[1:]) == 224 or max(x["image"].shape[1:]) == 320 for x in test)
    assert instantiate(cfg.dataloader.evaluator).dataset_name == name
    assert MetadataCatalog.get(name).thing_classes == ["two", "five", "nine"]

import numpy as np
import pytest
import torch

from detrex.config import LazyConfig, instantiate
from detrex.data import DatasetCatalog, read_image
from detrex.engine.predictor import DefaultPredictor

TINY = "tests/configs/tiny_conditional_detr.py"


@pytest.fixture
def cfg_and_model(tiny_shapes):
    cfg = LazyConfig.load(TINY)
    torch.manual_seed(0)
    return cfg, instantiate(cfg.model).eval()


def test_same_as_the_test_loader(cfg_and_model):
    cfg, model = cfg_and_model
    predictor = DefaultPredictor(cfg, model=model)
    mapper = instantiate(cfg.dataloader.test.mapper)
    for d in DatasetCatalog.get("tiny_shapes_val"):
        with torch.no_grad():
            ref = model([mapper(d)])[0]["instances"]
        ours = predictor(read_image(d["file_name"], format="RGB"))["instances"]
        assert ours.image_size == (d["height"], d["width"])
        torch.testing.assert_close(ours.pred_boxes.tensor, ref.pred_boxes.tensor)
        torch.testing.assert_close(ours.scores, ref.scores)
        torch.testing.assert_close(ours.pred_classes, ref.pred_classes)


def test_bgr_input_is_converted(cfg_and_model):
    cfg, model = cfg_and_model
    rgb = np.random.default_rng(0).integers(0, 256, (90, 140, 3), dtype=np.uint8)
    inputs_rgb = DefaultPredictor(cfg, model=model).preprocess(rgb)
    inputs_bgr = DefaultPredictor(cfg, input_format="BGR", model=model).preprocess(rgb[:, :, ::-1])
    torch.testing.assert_close(inputs_bgr["image"], inputs_rgb["image"])
    # the tiny test mapper's ResizeShortestEdge(128, max_size=160): 140 * 128/90 > 160, so the long side
    # becomes 160 and the short one 90 * 160/140 = 102.9 -> 103; (height, width) keep the original size
    assert tuple(inputs_rgb["image"].shape) == (3, 103, 160)
    assert inputs_rgb["image"].dtype == torch.uint8
    assert (inputs_rgb["height"], inputs_rgb["width"]) == (90, 140)


def test_loads_init_checkpoint(tiny_shapes, one_box_checkpoint):
    path, overrides = one_box_checkpoint
    cfg = LazyConfig.apply_overrides(LazyConfig.load(TINY), [*overrides, f"train.init_checkpoint={path}"])
    out = DefaultPredictor(cfg)(np.full((100, 120, 3), 90, dtype=np.uint8))["instances"]
    assert len(out) == 1 and out.pred_classes.tolist() == [2]
    torch.testing.assert_close(out.scores, torch.sigmoid(torch.tensor([2.0])))


def test_bad_inputs(cfg_and_model):
    cfg, model = cfg_and_model
    with pytest.raises(ValueError, match="input_format must be 'RGB' or 'BGR'"):
        DefaultPredictor(cfg, input_format="L", model=model)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 image"):
        DefaultPredictor(cfg, model=model)(np.zeros((10, 10), dtype=np.uint8))
    del cfg.dataloader.test.mapper.augmentation
    with pytest.raises(KeyError, match="dataloader.test.mapper.augmentation"):
        DefaultPredictor(cfg, model=model)

"""DefaultPredictor: a detector from a lazy config, run on one numpy image at a time.

predictor = DefaultPredictor(cfg, input_format="BGR")      # e.g. frames from cv2
instances = predictor(frame)["instances"]                  # Instances in the frame's pixels
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

__all__ = ["DefaultPredictor", "build_test_augmentation", "class_metadata", "model_image_format"]

logger = logging.getLogger(__name__)


def build_test_augmentation(cfg) -> list:
    """The test loader's resize policy, `cfg.dataloader.test.mapper.augmentation`, instantiated."""
    from detrex.config import instantiate

    augs = OmegaConf.select(cfg, "dataloader.test.mapper.augmentation", default=None)
    if augs is None:
        raise KeyError(
            "the config has no dataloader.test.mapper.augmentation; the predictor resizes images with the "
            "test mapper's augmentation list, e.g. [L(ResizeShortestEdge)(short_edge_length=800, max_size=1333)]"
        )
    return list(instantiate(augs))


def model_image_format(cfg) -> str:
    """The channel order the model was trained with: the test mapper's `img_format` (default RGB)."""
    return OmegaConf.select(cfg, "dataloader.test.mapper.img_format", default="RGB") or "RGB"


def class_metadata(cfg):
    """Metadata of the first test dataset (for `thing_classes`), or None when the config names none."""
    from detrex.data import MetadataCatalog
    from detrex.utils.dataset_check import config_dataset_names

    names = config_dataset_names(cfg, "test")
    return MetadataCatalog.get(names[0]) if names else None


class DefaultPredictor:
    """Run the detector of `cfg` on single images, with the test loader's preprocessing.

    Builds `cfg.model` on `cfg.train.device` in eval mode and loads `cfg.train.init_checkpoint` with
    DetectionCheckpointer (an empty path keeps the random initialisation, with a warning). Pass `model`
    to use an already built model instead (no weights are loaded then).

    Call with an (H, W, 3) uint8 image in `input_format` channel order ("RGB" or "BGR"); it is
    converted to the mapper's `img_format`, resized by `cfg.dataloader.test.mapper.augmentation`, and
    the model's predictions come back as detectron2's DefaultPredictor returns them:
    {"instances": Instances(pred_boxes, scores, pred_classes)} in the input image's pixels.
    """

    def __init__(self, cfg, input_format: str = "RGB", model: nn.Module | None = None):
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"DefaultPredictor: input_format must be 'RGB' or 'BGR', got {input_format!r}")
        self.cfg = cfg
        self.input_format = input_format
        self.model_format = model_image_format(cfg)
        self.augmentation = build_test_augmentation(cfg)
        if model is None:
            model = self._build_model(cfg)
        self.model = model.eval()

    @staticmethod
    def _build_model(cfg) -> nn.Module:
        from detrex.checkpoint import DetectionCheckpointer
        from detrex.config import instantiate
        from detrex.engine.launch import check_device

        device = OmegaConf.select(cfg, "train.device", default="cpu") or "cpu"
        check_device(device)
        model = instantiate(cfg.model).to(device)
        weights = OmegaConf.select(cfg, "train.init_checkpoint", default="")
        if weights:
            DetectionCheckpointer(model).load(weights)
        else:
            logger.warning("train.init_checkpoint is empty: predicting with randomly initialised weights")
        return model

    def preprocess(self, original_image: np.ndarray) -> dict:
        """The model's input dict for one image: converted, resized, as a uint8 [3, H, W] tensor."""
        from detrex.data.transforms import AugInput, AugmentationList

        image = np.asarray(original_image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"DefaultPredictor expects an (H, W, 3) uint8 image, got shape {image.shape} dtype {image.dtype}"
            )
        height, width = image.shape[:2]
        if self.input_format != self.model_format:
            image = image[:, :, ::-1]
        aug_input = AugInput(np.ascontiguousarray(image))
        AugmentationList(self.augmentation)(aug_input)
        tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        return {"image": tensor, "height": height, "width": width}

    @torch.no_grad()
    def __call__(self, original_image: np.ndarray) -> dict:
        return self.model([self.preprocess(original_image)])[0]

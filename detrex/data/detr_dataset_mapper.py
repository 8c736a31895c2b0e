"""DetrDatasetMapper: a dataset dict -> the model's input dict (read, augment, to tensors)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from . import detection_utils as utils
from .transforms import Augmentation, AugmentationList, Transform, apply_augmentations

__all__ = ["DetrDatasetMapper"]

logger = logging.getLogger(__name__)


class DetrDatasetMapper:
    """Map one dataset dict to DETR's input.

    Input: {"file_name", "height", "width", "image_id", "annotations": [{"bbox", "bbox_mode",
        "category_id", "iscrowd"}]}.
    Output: {"file_name", "image": uint8 [3, H, W] tensor in `img_format` channel order, "height",
        "width" (the original size), "image_id", and in training "instances": Instances((H, W),
        gt_boxes=Boxes (XYXY pixels of the augmented image), gt_classes=int64)}.

    In training, each image goes through `augmentation_with_crop` with probability 0.5 and through
    `augmentation` otherwise (always `augmentation` when augmentation_with_crop is None): detectron2 has
    no "random choice" augmentation, so DETR's two policies are two lists. Crowd boxes are dropped in
    training; boxes emptied by a crop are removed. At test time annotations are removed.
    """

    def __init__(
        self,
        augmentation: Sequence[Augmentation | Transform],
        augmentation_with_crop: Sequence[Augmentation | Transform] | None,
        is_train: bool = True,
        mask_on: bool = False,
        img_format: str = "RGB",
    ):
        if mask_on:
            raise NotImplementedError("DetrDatasetMapper: mask_on=True is not supported (detection only)")
        self.augmentation = AugmentationList(augmentation)
        self.augmentation_with_crop = (
            None if augmentation_with_crop is None else AugmentationList(augmentation_with_crop)
        )
        self.is_train = is_train
        self.mask_on = mask_on
        self.img_format = img_format
        mode = "training" if is_train else "inference"
        logger.info(
            f"DetrDatasetMapper ({mode}): {self.augmentation}, with crop: {self.augmentation_with_crop}"
        )

    def _read(self, dataset_dict: dict) -> np.ndarray:
        file_name = dataset_dict["file_name"]
        try:
            return utils.read_image(file_name, format=self.img_format)
        except (FileNotFoundError, utils.ImageReadError) as e:
            raise type(e)(f"{e} (image_id {dataset_dict.get('image_id')})") from e

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = dict(dataset_dict)  # shallow copy: annotations are rebuilt below, never mutated
        image = self._read(dataset_dict)
        utils.check_image_size(dataset_dict, image)

        augmentation = self.augmentation
        if self.is_train and self.augmentation_with_crop is not None and np.random.rand() <= 0.5:
            augmentation = self.augmentation_with_crop
        image, transforms = apply_augmentations([augmentation], image)
        image_shape = image.shape[:2]  # (h, w) after augmentation
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))

        annotations = dataset_dict.pop("annotations", None)
        if not self.is_train or annotations is None:
            return dataset_dict
        annos = [
            utils.transform_instance_annotations(dict(obj), transforms, image_shape)
            for obj in annotations
            if obj.get("iscrowd", 0) == 0
        ]
        instances = utils.annotations_to_instances(annos, image_shape)
        dataset_dict["instances"] = utils.filter_empty_instances(instances)
        return dataset_dict

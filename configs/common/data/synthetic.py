# Synthetic shapes (5 classes, 128-256 px images, generated under $DETREX_DATASETS on first use):
# the CPU quickstart data. Same structure as coco_detr.py with every scale shrunk for small images.
from omegaconf import OmegaConf

import detrex.data.transforms as T
from detrex.config import LazyCall as L
from detrex.data import (
    DetrDatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detrex.evaluation import COCOEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="synthetic_shapes_train"),
    mapper=L(DetrDatasetMapper)(
        augmentation=[
            L(T.RandomFlip)(),
            L(T.ResizeShortestEdge)(
                # COCO's 480..800 scaled by 0.32 (800 -> 256): multi-scale without costly large inputs
                short_edge_length=(160, 176, 192, 208, 224, 240, 256),
                max_size=320,
                sample_style="choice",
            ),
        ],
        augmentation_with_crop=[
            L(T.RandomFlip)(),
            L(T.ResizeShortestEdge)(
                short_edge_length=(128, 160, 192),  # COCO's 400/500/600, same 0.32 factor
                sample_style="choice",
            ),
            L(T.RandomCrop)(
                crop_type="absolute_range",
                crop_size=(120, 192),  # COCO's (384, 600) scaled: crops keep most of the short side
            ),
            L(T.ResizeShortestEdge)(
                short_edge_length=(160, 176, 192, 208, 224, 240, 256),
                max_size=320,
                sample_style="choice",
            ),
        ],
        is_train=True,
        mask_on=False,
        img_format="RGB",
    ),
    aspect_ratio_grouping=True,  # landscape and portrait images in separate batches: less padding
    total_batch_size=8,  # small batches: more updates within a CPU time budget
    num_workers=2,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="synthetic_shapes_val", filter_empty=False),
    mapper=L(DetrDatasetMapper)(
        augmentation=[
            L(T.ResizeShortestEdge)(
                short_edge_length=224,  # the middle of the training scales; objects are large (>= 15%)
                max_size=320,
            ),
        ],
        augmentation_with_crop=None,
        is_train=False,
        mask_on=False,
        img_format="RGB",
    ),
    num_workers=2,
)

dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    use_fast_impl=False,  # True: faster-coco-eval (pip install -e ".[fast]"), the same AP
)

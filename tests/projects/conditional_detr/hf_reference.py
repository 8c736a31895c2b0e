"""transformers' ConditionalDetrForObjectDetection as a reference for detrex's Conditional-DETR: tiny configs,
seeded weights that exercise every path, and its detections computed the way detrex post-processes.

Importing this module needs transformers and timm; tests skip without them (``pytest.importorskip``).
"""

import math

import torch
from transformers import (
    ConditionalDetrConfig,
    ConditionalDetrForObjectDetection,
    ConditionalDetrImageProcessor,
)

from detrex.data import MetadataCatalog
from detrex.layers import box_cxcywh_to_xyxy
from tests.projects.parity_utils import compare_eval


def coco_id2label() -> dict[int, str]:
    """The 91 labels of transformers' COCO checkpoints: class names at their COCO category ids, N/A elsewhere."""
    meta = MetadataCatalog.get("coco_2017_val")
    names = {i: "N/A" for i in range(91)}
    for coco_id, contiguous in meta.thing_dataset_id_to_contiguous_id.items():
        names[coco_id] = meta.thing_classes[contiguous]
    return names


def tiny_hf_config(**changes) -> ConditionalDetrConfig:
    """The transformers twin of the tests' tiny Conditional-DETR with the ResNet-18 backbone (tests/tiny.py:
    ``build_tiny_model("conditional_detr", backbone="resnet18")``: ResNet-18 from timm, width 128, 8 heads,
    2 + 3 layers, 30 queries) with COCO's 91 labels unless ``changes`` say otherwise (a change to None removes
    the setting)."""
    values = dict(backbone="resnet18", d_model=128, encoder_layers=2, decoder_layers=3, encoder_attention_heads=8,
                  decoder_attention_heads=8, encoder_ffn_dim=512, decoder_ffn_dim=512, num_queries=30,
                  id2label=coco_id2label())  # fmt: skip
    values.update(changes)
    return ConditionalDetrConfig(**{k: v for k, v in values.items() if v is not None})


def seeded_hf_model(config: ConditionalDetrConfig, seed: int = 0) -> ConditionalDetrForObjectDetection:
    """The model with every tensor drawn from ``seed``: no zero-initialised residual branch (timm zeroes the
    last norm of each block), batch-norm statistics away from 0 / 1, decoder query / key projections scaled
    up so that attention is not uniform (the parity fixtures' reasoning), class biases near the focal prior."""
    model = ConditionalDetrForObjectDetection(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            normal = torch.randn(tensor.shape, generator=g)
            if name.endswith("running_var"):
                value = 0.5 + torch.rand(tensor.shape, generator=g)
            elif name.endswith("running_mean"):
                value = 0.1 * normal
            elif name.endswith("query_position_embeddings.weight"):
                value = 2.0 * normal
            elif tensor.dim() >= 2:  # conv / linear weights, scaled by fan-in
                value = normal / math.sqrt(tensor[0].numel())
                if name.endswith(("o_proj.weight", "out_proj.weight", "fc2.weight")):
                    value = 0.3 * value  # residual branches
                elif ".decoder." in name and any(
                    p in name
                    for p in (
                        "q_content",
                        "q_pos",
                        "k_content",
                        "k_pos",
                        "qcontent",
                        "qpos",
                        "kcontent",
                        "kpos",
                    )
                ):
                    value = 4.0 * value  # fmt: skip
            elif name.endswith("weight"):  # batch / layer norm scales
                value = 1.0 + 0.1 * normal
            elif name.startswith("class_labels_classifier"):
                value = -math.log(99) + 0.2 * normal
            else:
                value = 0.05 * normal
            tensor.copy_(value)
    return model


def random_images(sizes, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]


def hf_detections(model, images: list[torch.Tensor], k: int, class_rows=None) -> list[dict]:
    """transformers' outputs for ``images`` (uint8 RGB, padded into one batch by its image processor), turned
    into detections as detrex does: top-k (query, class) sigmoid scores over ``class_rows`` (all classes
    when None), boxes in pixels of each image, clipped to it, empty ones dropped."""
    processor = ConditionalDetrImageProcessor(do_resize=False)
    inputs = processor(images=[image.permute(1, 2, 0).numpy() for image in images], return_tensors="pt")
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"], pixel_mask=inputs["pixel_mask"])
    logits = outputs.logits if class_rows is None else outputs.logits[..., torch.as_tensor(class_rows)]
    num_classes = logits.shape[-1]
    scores, index = logits.sigmoid().flatten(1).topk(k, dim=1)
    results = []
    for i, image in enumerate(images):
        h, w = image.shape[-2:]
        boxes = box_cxcywh_to_xyxy(outputs.pred_boxes[i][index[i] // num_classes]) * torch.tensor(
            [w, h, w, h]
        )
        boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w),
                             boxes[:, 3].clamp(0, h)], dim=1)  # fmt: skip
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        results.append({"height": h, "width": w, "pred_boxes": boxes[keep], "scores": scores[i][keep],
                        "pred_classes": (index[i] % num_classes)[keep]})  # fmt: skip
    return results


def assert_same_detections(model, images: list[torch.Tensor], expected: list[dict]) -> None:
    """detrex's detections for ``images`` (one padded batch) match ``expected``: same count, each within
    1e-4 in score and 0.05 px in box coordinates, same class (parity_utils.compare_eval's matching)."""
    model.eval()
    with torch.no_grad():
        outputs = model(
            [{"image": image, "height": image.shape[1], "width": image.shape[2]} for image in images]
        )
    for output, reference in zip(outputs, expected):
        instances = output["instances"]
        box_atol_frac = 0.05 / max(reference["height"], reference["width"])
        compare_eval(instances, reference, {"score_atol": 1e-4, "box_atol_frac": box_atol_frac})
        # not degenerate: the detections differ from one another
        assert (
            float(instances.scores.std()) > 1e-3 and float(instances.pred_boxes.tensor.std(dim=0).min()) > 1.0
        )

"""Official Anchor-DETR (megvii-research/AnchorDETR) release checkpoints -> this project's names.

The official model keeps the torchvision-layout backbone under `backbone.body.` (our layout too) and the
transformer under the same names; only the single-level input projection loses a nesting level
(`input_proj.0.{0,1}` -> `input_proj.{0,1}`), and the shared class head keeps the 80 COCO rows of its 91.
The checkpoints hold one copy of the class / box head per decoder layer (`class_embed.0..5`); the model
registers one module six times, so all copies load into the same tensors.
detrex's converted Anchor-DETR checkpoints already have our names and load without conversion.
"""

from .base import FamilyConverter

CONVERTER = FamilyConverter(
    family="anchor_detr",
    name="Anchor-DETR",
    description="official Anchor-DETR release (github.com/megvii-research/AnchorDETR)",
    signature=(r"^transformer\.pattern\.weight$", r"^input_proj\.0\.0\.weight$"),
    model_signature=(r"^transformer\.pattern\.weight$", r"^transformer\.adapt_pos2d\."),  # official's too
    renames=(
        (r"^input_proj\.0\.0\.", "input_proj.0."),  # 1x1 conv
        (r"^input_proj\.0\.1\.", "input_proj.1."),  # GroupNorm
    ),
    class_keys=(r"^transformer\.class_embed\.\d+\.(weight|bias)$",),
    backbone_prefix=None,  # `backbone.body.*` is already our TorchvisionResNet's layout
)

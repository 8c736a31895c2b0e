"""The Conditional-DETR model table: one row per config. README.md shows ``markdown_table()`` verbatim and
tests check the parameter counts against the instantiated configs.

Box AP: COCO val2017, as published by the official release (Atten4Vis/ConditionalDETR README; 50 epochs).
Weights: the official release checkpoints converted to these names by detrex (``DetectionCheckpointer`` loads
them key for key; it also loads the official files themselves).
"""

from dataclasses import dataclass

DETREX_STORAGE = "https://github.com/IDEA-Research/detrex-storage/releases/download"


@dataclass(frozen=True)
class ModelZooEntry:
    variant: str
    config: str  # relative to the repository root
    backbone: str
    epochs: int
    box_ap: float
    num_params: int  # every parameter, frozen ones included (FrozenBN statistics are buffers, not counted)
    weights: str


MODEL_ZOO = [
    ModelZooEntry(
        "Conditional-DETR-R50", "projects/conditional_detr/configs/conditional_detr_r50_50ep.py", "R-50", 50,
        41.0, 43_415_574, f"{DETREX_STORAGE}/v0.1.0/converted_conditional_detr_r50_50ep.pth",
    ),
    ModelZooEntry(
        "Conditional-DETR-R50-DC5", "projects/conditional_detr/configs/conditional_detr_r50_dc5_50ep.py",
        "R-50-DC5", 50, 43.7, 43_415_574, f"{DETREX_STORAGE}/v0.3.0/converted_conditional_detr_r50_dc5.pth",
    ),
    ModelZooEntry(
        "Conditional-DETR-R101", "projects/conditional_detr/configs/conditional_detr_r101_50ep.py", "R-101", 50,
        42.8, 62_355_478, f"{DETREX_STORAGE}/v0.1.0/converted_conditional_detr_r101_50ep.pth",
    ),
    ModelZooEntry(
        "Conditional-DETR-R101-DC5", "projects/conditional_detr/configs/conditional_detr_r101_dc5_50ep.py",
        "R-101-DC5", 50, 45.0, 62_355_478, f"{DETREX_STORAGE}/v0.3.0/converted_conditional_detr_r101_dc5.pth",
    ),
]  # fmt: skip


def markdown_table() -> str:
    lines = [
        "| variant | config | backbone | epochs | box AP | #params | weights |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for e in MODEL_ZOO:
        config = e.config.removeprefix("projects/conditional_detr/")
        lines.append(
            f"| {e.variant} | [{config.rsplit('/', 1)[-1]}]({config}) | {e.backbone} | {e.epochs} | "
            f"{e.box_ap:.1f} | {e.num_params:,} | [model]({e.weights}) |"
        )
    return "\n".join(lines)

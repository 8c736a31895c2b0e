"""Published Anchor-DETR models: the one table that README.md shows and the tests check against configs."""

from __future__ import annotations

from dataclasses import dataclass

_DETREX_STORAGE = "https://github.com/IDEA-Research/detrex-storage/releases/download/v0.3.0/"


@dataclass(frozen=True)
class ModelZooEntry:
    variant: str
    config: str  # relative to the repository root
    backbone: str  # torchvision constructor name
    dilation: bool  # DC5
    official_box_ap: float  # COCO val2017, official README (megvii-research/AnchorDETR)
    detrex_box_ap: float  # the same weights converted by detrex, evaluated in detrex (detrex's README)
    num_params: int  # unique parameters of the built model, frozen ones included (shared heads once)
    official_weights: str
    detrex_weights: str


MODEL_ZOO: tuple[ModelZooEntry, ...] = (
    ModelZooEntry(
        variant="Anchor-DETR-R50",
        config="projects/anchor_detr/configs/anchor_detr_r50_50ep.py",
        backbone="resnet50",
        dilation=False,
        official_box_ap=42.1,
        detrex_box_ap=42.2,
        num_params=37_035_884,
        official_weights="https://drive.google.com/file/d/1ktLJyw4PGdaXkOn61W537Z67WHcttXDs/view?usp=sharing",
        detrex_weights=_DETREX_STORAGE + "converted_anchor_detr_r50_50ep.pth",
    ),
    ModelZooEntry(
        variant="Anchor-DETR-R50-DC5",
        config="projects/anchor_detr/configs/anchor_detr_r50_dc5_50ep.py",
        backbone="resnet50",
        dilation=True,
        official_box_ap=44.3,
        detrex_box_ap=44.2,
        num_params=37_035_884,
        official_weights="https://drive.google.com/file/d/1lJZWdIlHj6KKmAdU28Y01tTyO0hc6Jxs/view?usp=sharing",
        detrex_weights=_DETREX_STORAGE + "converted_anchor_detr_r50_dc5_50ep.pth",
    ),
    ModelZooEntry(
        variant="Anchor-DETR-R101",
        config="projects/anchor_detr/configs/anchor_detr_r101_50ep.py",
        backbone="resnet101",
        dilation=False,
        official_box_ap=43.5,
        detrex_box_ap=43.5,
        num_params=55_975_788,
        official_weights="https://drive.google.com/file/d/1eBLYzlKWwSF_RRcfjgRXqIplRKetsvtg/view?usp=sharing",
        detrex_weights=_DETREX_STORAGE + "converted_anchor_detr_r101_50ep.pth",
    ),
    ModelZooEntry(
        variant="Anchor-DETR-R101-DC5",
        config="projects/anchor_detr/configs/anchor_detr_r101_dc5_50ep.py",
        backbone="resnet101",
        dilation=True,
        official_box_ap=45.1,
        detrex_box_ap=45.1,
        num_params=55_975_788,
        official_weights="https://drive.google.com/file/d/1irmZPSALME4Nht3_qhM9WLExDyO9Sj-J/view?usp=sharing",
        detrex_weights=_DETREX_STORAGE + "converted_anchor_detr_r101_dc5_50ep.pth",
    ),
)


def markdown_table() -> str:
    """The model table of README.md (tests require README.md to contain exactly this text)."""
    lines = [
        "| variant | config | box AP (official) | box AP (detrex, converted) | #params | weights |",
        "|---|---|---|---|---|---|",
    ]
    for e in MODEL_ZOO:
        config = e.config.removeprefix("projects/anchor_detr/")
        weights = f"[official]({e.official_weights}) / [detrex]({e.detrex_weights})"
        lines.append(
            f"| {e.variant} | [{config}]({config}) | {e.official_box_ap:.1f} | {e.detrex_box_ap:.1f} "
            f"| {e.num_params / 1e6:.2f}M | {weights} |"
        )
    return "\n".join(lines)

# The tiny Anchor-DETR of the tests (the quickstart's model) on 4 + 2 synthetic images, 8 iterations:
# the config of the end-to-end and tool tests. See tiny_recipe.py for the data and the schedule.
from ...projects.anchor_detr.configs.models.anchor_detr_tiny import model  # noqa: F401
from .tiny_recipe import dataloader, lr_multiplier, optimizer, train  # noqa: F401

train.output_dir = "./output/tiny_anchor_detr"

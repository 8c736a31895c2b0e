# The tiny Conditional-DETR of the tests (the quickstart's model) on 4 + 2 synthetic images, 8 iterations:
# the config of the end-to-end and tool tests. See tiny_recipe.py for the data and the schedule.
from ...projects.conditional_detr.configs.models.conditional_detr_tiny import model  # noqa: F401
from .tiny_recipe import dataloader, lr_multiplier, optimizer, train  # noqa: F401

train.output_dir = "./output/tiny_conditional_detr"

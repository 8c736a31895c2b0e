# The quickstart: a tiny Anchor-DETR trained from scratch on the synthetic shapes dataset (generated
# under ./datasets on first use) on 2 CPU cores, evaluated on its 200 held-out images.
#   python tools/train_net.py --config-file projects/anchor_detr/configs/anchor_detr_tiny_synthetic.py
# The recipe (schedule, optimizer, small inputs) is configs/common/synthetic_quickstart.py.
from detrex.config import get_config

from .models.anchor_detr_tiny import model  # noqa: F401

recipe = get_config("common/synthetic_quickstart.py")
dataloader = recipe.dataloader
optimizer = recipe.optimizer
train = recipe.train
lr_multiplier = recipe.lr_multiplier
del recipe

train.output_dir = "./output/anchor_detr_tiny_synthetic"

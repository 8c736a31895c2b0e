from detrex.config import get_config

from .models.anchor_detr_r50 import model  # noqa: F401

dataloader = get_config("common/data/coco_detr.py").dataloader
optimizer = get_config("common/optim.py").AdamW
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_50ep  # lr x0.1 after epoch 40
train = get_config("common/train.py").train

train.init_checkpoint = "https://download.pytorch.org/models/resnet50-0676ba61.pth"  # torchvision ImageNet
train.output_dir = "./output/anchor_detr_r50_50ep"
train.max_iter = 375000  # 50 epochs at batch 16
train.eval_period = 5000
train.log_period = 20
train.checkpointer.period = 5000
train.clip_grad.enabled = True
train.clip_grad.params.max_norm = 0.1
train.clip_grad.params.norm_type = 2.0

optimizer.lr = 1e-4
optimizer.betas = (0.9, 0.999)
optimizer.weight_decay = 1e-4
optimizer.params.weight_decay_norm = None  # the reference decays every parameter, norms included
optimizer.params.lr_factor_func = lambda module_name: 0.1 if "backbone" in module_name else 1

# Total batch size over all GPUs. The official models were trained with 8 images in total (8 GPUs x 1);
# detrex's config uses 16 with the same lr, and so do we.
dataloader.train.total_batch_size = 16

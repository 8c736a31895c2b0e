# The part of tests/configs/tiny_{anchor,conditional}_detr.py that does not depend on the model: the synthetic
# shapes' data config (configs/common/data/synthetic.py) on two tiny splits, test images resized to 128-160 px,
# and the quickstart's optimizer and schedule (configs/common/synthetic_quickstart.py) for 8 iterations.
# The splits are generated on first use under $DETREX_DATASETS/synthetic_shapes/tiny_{train,val}; the tests
# point $DETREX_DATASETS at a temporary folder.
from detrex.config import get_config
from detrex.data import DatasetCatalog
from detrex.data.datasets.synthetic import register_synthetic_shapes

dataloader = get_config("common/data/synthetic.py").dataloader
quickstart = get_config("common/synthetic_quickstart.py")
optimizer = quickstart.optimizer
train = quickstart.train  # CPU, from scratch, seed 42
lr_multiplier = quickstart.lr_multiplier
del quickstart

if "tiny_shapes_train" not in DatasetCatalog:  # a process may load the configs many times
    # 128-160 px images with at most 3 objects: the boxes and labels that the tools draw stay apart
    register_synthetic_shapes("tiny_shapes_train", "tiny_train", 4, seed=0, max_size=160, max_objects=3)
    register_synthetic_shapes("tiny_shapes_val", "tiny_val", 2, seed=1, max_size=160, max_objects=3)

dataloader.train.dataset.names = "tiny_shapes_train"
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "tiny_shapes_val"
dataloader.test.mapper.augmentation[0].short_edge_length = 128
dataloader.test.mapper.augmentation[0].max_size = 160
dataloader.test.num_workers = 0

train.max_iter = 8
train.checkpointer.period = 4  # model_0000003.pth
train.eval_period = 8
train.log_period = 1

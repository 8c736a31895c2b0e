# The quickstart's backbone: a narrow ResNet-18-style network (32 / 64 / 128 channels, detectron2 layout)
# returning stride-16 features, 7-14 pixels per side on the quickstart's 112-224 px inputs. No ImageNet
# weights are available offline, so every layer trains: norms are trainable BN, nothing is frozen.
from detrex.config import LazyCall as L
from detrex.modeling.backbone import BasicBlock, BasicStem, ResNet, make_stage

backbone = L(ResNet)(
    stem=L(BasicStem)(in_channels=3, out_channels=32, norm="BN"),
    stages=[
        L(make_stage)(block_class=BasicBlock, num_blocks=2, in_channels=32, out_channels=32, norm="BN"),
        L(make_stage)(
            block_class=BasicBlock, num_blocks=2, in_channels=32, out_channels=64, first_stride=2, norm="BN"
        ),
        L(make_stage)(
            block_class=BasicBlock, num_blocks=2, in_channels=64, out_channels=128, first_stride=2, norm="BN"
        ),
    ],
    out_features=["res4"],
    freeze_at=0,
)

# Training options read by tools/train_net.py and detrex.engine (detrex's names and defaults).
# Projects import this and change only what differs:  train = get_config("common/train.py").train
train = dict(
    output_dir="./output",  # checkpoints, log.txt, config.yaml, metrics; projects use ./output/<config name>
    init_checkpoint="",  # weights loaded before training when not resuming; "" keeps the model's own init
    max_iter=90000,  # detectron2's 1x schedule at batch 16; DETR configs set their own (50 epochs = 375000)
    amp=dict(
        enabled=False,  # fp32 by default: DETR losses (GIoU, focal) are checked in fp32
        dtype="auto",  # "auto": bfloat16 where the device supports it, else float16 with loss scaling
    ),
    ddp=dict(
        broadcast_buffers=False,  # backbone BN is frozen, so there are no running stats to sync each step
        find_unused_parameters=False,  # every parameter gets a gradient; True costs a graph walk per step
        fp16_compression=False,  # fp16 gradient all-reduce only pays off on slow interconnects
    ),
    checkpointer=dict(period=5000, max_to_keep=100),  # save every 5000 iterations, keep the newest 100
    eval_period=5000,  # evaluate on dataloader.test every 5000 iterations and at the end
    log_period=20,  # iterations between console/metric writes: frequent enough, cheap to sync
    device="cuda",  # applied once in tools/train_net.py; train.device=cpu runs without a GPU
    seed=-1,  # negative: a fresh seed per run (logged); >= 0 makes runs repeatable
    clip_grad=dict(
        enabled=False,  # DETR-family configs turn it on: their papers train with L2 clipping at 0.1
        params=dict(max_norm=0.1, norm_type=2.0),  # arguments of torch.nn.utils.clip_grad_norm_
    ),
    model_ema=dict(
        enabled=False,
        decay=0.999,  # weight of the running average per step (~1000-step horizon)
        use_ema_weights_for_eval_only=False,  # True: train on the raw weights, evaluate the EMA copy
    ),
    # smoke test: 20 training steps with an evaluation on `eval_batches` test batches every 10, then stop
    fast_dev_run=dict(enabled=False, eval_batches=4),
    epochs=None,  # None: train for max_iter; N: max_iter = N passes over the train set at total batch size
    # None: no check; B: lr and schedule were tuned for total batch B: a warning if ours differs (no rescaling)
    reference_batch_size=None,
    compile=dict(enabled=False),  # torch.compile: compiling (and recompiling per image size) costs > gains
    # the kernels of detrex.layers.cpu_kernels (float32 CPU runs only); False: stock PyTorch operators only
    cpu_kernels=True,
)

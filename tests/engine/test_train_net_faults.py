"""tools/train_net.py ends a user's fault in one line on stderr, with no traceback, and loses nothing.

Each test runs the script in a subprocess on the quick-start config (the tiny Conditional-DETR), trained on a
4-image dataset in a COCO-format folder of its own, or on the published R50 config over an empty datasets root.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from detrex.data import generate_synthetic_shapes

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = "projects.conditional_detr.configs.conditional_detr_tiny_synthetic"

CONFIG = """
from detrex.data import register_coco_instances

from {quickstart} import dataloader, lr_multiplier, model, optimizer, train

register_coco_instances("{name}", {{}}, "{folder}/annotations.json", "{folder}/images")
dataloader.train.dataset.names = "{name}"
dataloader.test.dataset.names = "{name}"
"""


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """{"ok": config on 4 good images, "stream": the same images as an iterable dataset without len(),
    "corrupt": the same images, one JPEG cut in half} and that file."""
    root = tmp_path_factory.mktemp("faults")
    paths = {}
    for kind in ("ok", "corrupt"):
        folder = root / kind
        generate_synthetic_shapes(str(folder), 4, seed=0, min_size=96, max_size=128, max_objects=3)
        paths[kind] = root / f"{kind}.py"
        name = f"faults_{kind}"
        paths[kind].write_text(CONFIG.format(quickstart=QUICKSTART, name=name, folder=folder))
    paths["stream"] = root / "stream.py"
    paths["stream"].write_text(paths["ok"].read_text() + STREAM.format(name="faults_ok"))
    images = json.loads((root / "corrupt" / "annotations.json").read_text())["images"]
    broken = root / "corrupt" / "images" / images[1]["file_name"]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    paths["broken_image"] = broken
    return paths


STREAM = """
import itertools

from torch.utils.data import IterableDataset

from detrex.data import DatasetCatalog, MetadataCatalog
from detrex.data.datasets import SHAPE_CLASSES


class Stream(IterableDataset):
    \"\"\"The training images, endlessly, as a stream without len().\"\"\"

    def __iter__(self):
        return itertools.cycle(DatasetCatalog.get("{name}"))


if "{name}_stream" not in DatasetCatalog.list():
    DatasetCatalog.register("{name}_stream", Stream)
    MetadataCatalog.get("{name}_stream").thing_classes = list(SHAPE_CLASSES)
dataloader.train.dataset.names = "{name}_stream"
"""


def train_net(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "tools/train_net.py", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_checkpoint(output_dir: Path) -> str:
    return (output_dir / "last_checkpoint").read_text().strip()


def assert_checkpoints_finite(output_dir: Path) -> None:
    files = sorted(output_dir.glob("model_*.pth"))
    assert files
    for path in files:
        for key, value in torch.load(path, map_location="cpu", weights_only=False)["model"].items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), (path.name, key)


@pytest.mark.slow
def test_nan_stops_before_the_update_and_resume_continues_from_a_finite_checkpoint(configs, tmp_path):
    out = tmp_path / "out"
    command = ["--config-file", configs["ok"], "optimizer.lr=1e4", f"train.output_dir={out}",
               "train.max_iter=40", "train.checkpointer.period=1", "train.log_period=1"]  # fmt: skip
    first = train_net(*command)
    assert first.returncode == 1, first.stderr[-3000:]
    line = first.stderr.strip()
    assert "\n" not in line and "Traceback" not in first.stderr
    # a gradient norm or a forward pass that went non-finite, within 3-4 iterations
    assert line.startswith(("NonFiniteStepError: ", "NonFiniteForwardError: ")) and "iteration=" in line
    assert "Training stopped before this step's update. Try a lower optimizer.lr" in line
    checkpoint = out / last_checkpoint(out)
    assert line.endswith(
        f"The last checkpoint, {checkpoint}, holds finite weights: --resume continues from it (with the "
        "optimizer.lr of the command line); if it stops again, start afresh without --resume."
    )
    assert_checkpoints_finite(out)
    assert "Stopped by:\nTraceback" in (out / "log.txt").read_text()  # the traceback is kept in log.txt

    resumed = train_net(*command[:2], "--resume", *command[2:])
    start = int(checkpoint.stem.split("_")[1]) + 1
    assert f"Resuming from {checkpoint}" in resumed.stdout
    assert f"Starting training from iteration {start}\n" in resumed.stdout
    assert "Traceback" not in resumed.stderr and "degenerate box" not in resumed.stderr
    if resumed.returncode != 0:  # the same blown-up weights may stop it again, in one line
        assert resumed.returncode == 1 and resumed.stderr.count("\n") == 1
        assert resumed.stderr.startswith(("NonFiniteStepError: ", "NonFiniteForwardError: "))
    assert_checkpoints_finite(out)


def test_eval_only_checks_the_classes_and_logs_in_its_own_folder(configs, tmp_path):
    result = train_net("--config-file", configs["ok"], "--eval-only", "model.num_classes=3",
                       f"train.output_dir={tmp_path}")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == (
        "DatasetCheckError: dataset 'faults_ok' has class ids [3, 4] outside [0, 3) = model.num_classes; dataset "
        "dicts need contiguous ids 0..C-1 (see the metadata's thing_dataset_id_to_contiguous_id), and "
        "model.num_classes must be at least C\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["inference"]  # nothing written over a training run's files
    assert sorted(os.listdir(tmp_path / "inference")) == ["config.yaml", "log.txt"]


def test_missing_coco_folder_is_reported_before_the_model_is_built(tmp_path):
    env = dict(os.environ, DETREX_DATASETS=str(tmp_path / "datasets"))
    result = train_net("--config-file", "projects/conditional_detr/configs/conditional_detr_r50_50ep.py",
                       "train.device=cpu", f"train.output_dir={tmp_path / 'out'}", env=env)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"FileNotFoundError: dataset 'coco_2017_train': no {tmp_path}/datasets/coco/annotations/"
        "instances_train2017.json\n  (root: $DETREX_DATASETS, else $DETECTRON2_DATASETS, else ./datasets). "
        "Expected layout:\n  coco/annotations/instances_{train,val}2017.json, coco/{train,val}2017/*.jpg\n"
    )
    assert "Model: " not in result.stdout


def test_failed_download_names_the_url_the_cache_and_the_key(configs, tmp_path):
    """An offline machine and a URL in train.init_checkpoint (the R50 configs' ImageNet weights)."""
    url = "http://127.0.0.1:9/resnet50-0676ba61.pth"  # nothing listens on the discard port
    env = dict(os.environ, FVCORE_CACHE=str(tmp_path / "cache"))
    result = train_net("--config-file", configs["ok"], f"train.output_dir={tmp_path / 'out'}",
                       f"train.init_checkpoint={url}", env=env)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.splitlines()[-1]
    assert line.startswith(f"CheckpointDownloadError: {url}: cannot download {url}")
    assert str(tmp_path / "cache") in line and "train.init_checkpoint=<local file>" in line
    assert "Failed to download" not in result.stderr


@pytest.mark.slow
def test_corrupt_image_is_reported_once_with_the_check_to_run(configs, tmp_path):
    result = train_net("--config-file", configs["corrupt"], f"train.output_dir={tmp_path}", "train.max_iter=3",
                       "dataloader.train.num_workers=2")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    broken = configs["broken_image"]
    assert result.stderr == (
        f"ImageReadError: cannot decode image {broken}: OSError: image file is truncated (4 bytes not processed) "
        f"(image_id 2). Find every such file with: python tools/check_dataset.py --config-file "
        f"{configs['corrupt']} --verify-images\n"
    )
    assert result.stdout.count(str(broken)) == 0  # said once, on stderr


def _sigint_as_in_a_terminal():
    """SIGINT with its default action in the child, as for a job in a terminal: a shell without job control
    starts background jobs with SIGINT ignored, and the ignored disposition would pass to train_net.py (which
    then rightly keeps running, as under nohup) when the tests themselves run in such a job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_says_where_training_stopped_and_how_to_resume(configs, tmp_path):
    command = [sys.executable, "tools/train_net.py", "--config-file", configs["ok"], f"train.output_dir={tmp_path}",
               "train.max_iter=1000", "train.checkpointer.period=2"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )  # fmt: skip
    try:
        while proc.poll() is None and not (tmp_path / "last_checkpoint").exists():
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-3000:]
    checkpoint = tmp_path / last_checkpoint(tmp_path)
    assert stderr.startswith("Interrupted during iteration ")
    assert stderr.endswith(f". --resume continues from {checkpoint}.\n") and stderr.count("\n") == 1
    assert "Traceback" not in stdout


def _train_net_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_net_script", REPO / "tools/train_net.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_training_set_size_is_none_for_a_stream_without_len():
    """What resolve_max_iter gets: the number of images, or None for an iterable dataset without len()."""
    from torch.utils.data import IterableDataset

    from detrex.data import build_detection_train_loader

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(100))

    dataset_size = _train_net_module().dataset_size
    records = [{"width": 4, "height": 3}] * 5
    assert dataset_size(build_detection_train_loader(records, None, total_batch_size=2)) == 5
    for grouping in (True, False):
        stream = build_detection_train_loader(Stream(), None, 2, aspect_ratio_grouping=grouping)
        assert dataset_size(stream) is None


def _matcher_error() -> FloatingPointError:
    """The FloatingPointError HungarianMatcher raises on this rank's diverged outputs."""
    from detrex.modeling import HungarianMatcher

    outputs = {"pred_logits": torch.zeros(1, 2, 3), "pred_boxes": torch.full((1, 2, 4), float("nan"))}
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    try:
        HungarianMatcher()(outputs, targets)
    except FloatingPointError as error:
        return error
    raise AssertionError("the matcher accepted NaN boxes")


def test_only_faults_every_rank_meets_stop_the_ranks_together(monkeypatch, tmp_path):
    """A stop with ``together`` makes ranks > 0 wait silently for rank 0: right for the Trainer's all-reduced
    checks and the weights' check (NonFiniteStepError), a hang for a NaN only one rank met (the matcher's,
    a forward pass's, user code's), which every rank reports itself."""
    from types import SimpleNamespace

    from detrex.engine import NonFiniteForwardError, NonFiniteStepError

    tool = _train_net_module()
    stops = []

    def record(message, status, together=False):
        stops.append((message, status, together))
        raise SystemExit(status)

    monkeypatch.setattr(tool, "stop", record)
    args = SimpleNamespace(eval_only=False, config_file="c.py")
    faults = [
        (NonFiniteStepError("Loss became infinite or NaN at iteration=4: loss_bbox"), True),
        (_matcher_error(), False),
        (NonFiniteForwardError("At iteration=3 2 weight tensors hold NaN/Inf"), False),
        (FloatingPointError("a user's own check"), False),
    ]
    for fault, together in faults:
        with pytest.raises(SystemExit):
            tool.report_fault(fault, args, str(tmp_path))
        message, status, was_together = stops.pop()
        assert (status, was_together) == (1, together), fault
        assert message.startswith(f"{type(fault).__name__}: {fault}") and "--resume" in message


@pytest.mark.slow
def test_an_iterable_training_set_needs_max_iter_and_refuses_epochs(configs, tmp_path):
    """A training dataset without len(): train.max_iter gives the length of training, train.epochs cannot."""
    common = ["--config-file", configs["stream"], "train.eval_period=0", "train.checkpointer.period=100"]
    refused = train_net(*common, f"train.output_dir={tmp_path / 'epochs'}", "train.epochs=1")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        "TrainLengthError: train.epochs=1 needs the size of the training dataset, and it has no len() (an "
        "iterable dataset): set train.max_iter=N and train.epochs=None"
    )
    trained = train_net(*common, f"train.output_dir={tmp_path / 'iters'}", "train.max_iter=2")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Training 2 iterations at total batch size 8 (dataset of unknown size)" in trained.stdout
    assert (tmp_path / "iters" / "model_final.pth").is_file()

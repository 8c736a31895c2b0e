"""Helpers for the tool tests: load `tools/*.py` and `demo/*.py` as modules and call their `main(argv)`."""

import importlib.util
import os

import numpy as np
import pytest

TINY_CONDITIONAL = "tests/configs/tiny_conditional_detr.py"
TINY_ANCHOR = "tests/configs/tiny_anchor_detr.py"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_script(relpath: str):
    """Import a script such as "tools/plot_metrics.py" by path (tools/ and demo/ are not packages)."""
    path = os.path.join(REPO_ROOT, relpath)
    name = "_script_" + relpath.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def script():
    return load_script


def edge_fraction(image: np.ndarray, box, color, tol: int = 40) -> float:
    """Fraction of the pixels on the 4 edges of `box` (xyxy, ints) whose colour is within `tol` of `color`."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    edges = np.concatenate(
        [image[y0, x0 : x1 + 1], image[y1, x0 : x1 + 1], image[y0 : y1 + 1, x0], image[y0 : y1 + 1, x1]]
    ).astype(int)
    close = np.abs(edges - np.array(color)[None]).max(axis=1) <= tol
    return float(close.mean())


@pytest.fixture(name="edge_fraction")
def _edge_fraction_fixture():
    return edge_fraction


@pytest.fixture(scope="session")
def _datasets_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(autouse=True)
def _datasets_in_tmp(_datasets_root, monkeypatch):
    """$DETREX_DATASETS is a temporary folder of this test session: the synthetic splits that the test configs
    register are generated there (once per session), never under ./datasets."""
    monkeypatch.setenv("DETREX_DATASETS", str(_datasets_root))


@pytest.fixture
def tiny_shapes():
    """The datasets of the tiny test configs (tests/configs/tiny_recipe.py): "tiny_shapes_train" (4 images) and
    "tiny_shapes_val" (2 images), registered by loading a config and generated. Returns {name: folder}."""
    from detrex.config import LazyConfig
    from detrex.data import DatasetCatalog, MetadataCatalog

    LazyConfig.load(TINY_CONDITIONAL)
    folders = {}
    for name in ("tiny_shapes_train", "tiny_shapes_val"):
        DatasetCatalog.get(name)  # generates the split on first use
        folders[name] = os.path.dirname(MetadataCatalog.get(name).json_file)
    return folders


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread than on two contended ones; restore the setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def one_box_checkpoint(tmp_path_factory):
    """Weights of the tiny Conditional-DETR made to predict class 2 with score sigmoid(2) for every query
    (class head: zero weights, bias 2 for class 2, -5 otherwise). Returns (path, overrides) where the
    overrides keep one query, so each image gets exactly one detection."""
    import torch

    from detrex.checkpoint import DetectionCheckpointer
    from detrex.config import LazyConfig, instantiate

    overrides = ["model.num_queries=1", "model.select_box_nums_for_evaluation=1"]
    cfg = LazyConfig.apply_overrides(LazyConfig.load(TINY_CONDITIONAL), overrides)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    with torch.no_grad():
        model.class_embed.weight.zero_()
        model.class_embed.bias.copy_(torch.tensor([-5.0, -5.0, 2.0, -5.0, -5.0]))
    folder = tmp_path_factory.mktemp("one_box")
    DetectionCheckpointer(model, save_dir=str(folder)).save("model_one_box")
    return str(folder / "model_one_box.pth"), overrides


@pytest.fixture
def corrupt_image_dataset(tiny_shapes, tmp_path):
    """Registers "tiny_shapes_corrupt": tiny_shapes_train (4 images) copied, its first image file a JPEG cut
    in half (it opens, but decoding fails). Yields (name, path of the broken file)."""
    import json
    import shutil

    from detrex.data import DatasetCatalog, MetadataCatalog, register_coco_instances

    source = tiny_shapes["tiny_shapes_train"]
    shutil.copytree(os.path.join(source, "images"), tmp_path / "images")
    with open(os.path.join(source, "annotations.json")) as f:
        coco = json.load(f)
    broken = tmp_path / "images" / coco["images"][0]["file_name"]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    json_file = tmp_path / "annotations.json"
    json_file.write_text(json.dumps(coco))
    name = "tiny_shapes_corrupt"
    register_coco_instances(name, {}, str(json_file), str(tmp_path / "images"))
    yield name, str(broken)
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)

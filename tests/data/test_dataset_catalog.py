import os

import pytest

from detrex.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detrex.data.datasets import COCO_CATEGORIES, get_datasets_root


def test_register_get_list_remove(unique_name):
    name = unique_name()
    calls = []
    DatasetCatalog.register(name, lambda: calls.append(1) or [{"file_name": "a.jpg", "image_id": 1}])
    assert calls == []  # lazy: nothing loads at registration
    assert name in DatasetCatalog.list()
    assert DatasetCatalog.get(name) == [{"file_name": "a.jpg", "image_id": 1}]
    assert calls == [1]
    with pytest.raises(KeyError, match="already registered"):
        DatasetCatalog.register(name, list)
    DatasetCatalog.remove(name)
    assert name not in DatasetCatalog.list()


def test_unknown_name_lists_registered_and_suggests():
    with pytest.raises(KeyError) as info:
        DatasetCatalog.get("coco_2017_vall")
    message = str(info.value)
    assert "'coco_2017_vall' is not registered" in message
    assert "Did you mean 'coco_2017_val'" in message
    assert "synthetic_shapes_train" in message  # the registered names are listed
    assert (
        message.startswith("dataset 'coco_2017_vall'") and "\n  Registered: " in message
    )  # printed as written


def test_metadata_set_get_and_conflict(unique_name):
    name = unique_name()
    meta = MetadataCatalog.get(name)
    assert MetadataCatalog.get(name) is meta
    meta.set(thing_classes=["a", "b"], evaluator_type="coco")
    meta.thing_classes = ["a", "b"]  # the same value again is fine
    assert meta.thing_classes == ["a", "b"]
    assert meta.get("missing", 7) == 7
    with pytest.raises(ValueError, match="already"):
        meta.set(thing_classes=["a", "c"])
    with pytest.raises(AttributeError, match="has no 'thing_colors'"):
        _ = meta.thing_colors
    assert meta.as_dict() == {"name": name, "thing_classes": ["a", "b"], "evaluator_type": "coco"}


def test_builtin_coco_metadata_without_files(monkeypatch, tmp_path):
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path / "nowhere"))
    meta = MetadataCatalog.get("coco_2017_val")
    assert len(meta.thing_classes) == 80
    assert meta.thing_classes[0] == "person" and meta.thing_classes[-1] == "toothbrush"
    id_map = meta.thing_dataset_id_to_contiguous_id
    assert id_map[1] == 0 and id_map[90] == 79 and 12 not in id_map
    assert sorted(id_map) == [cid for cid, _ in COCO_CATEGORIES]
    assert meta.evaluator_type == "coco"
    assert meta.json_file == os.path.join(
        str(tmp_path / "nowhere"), "coco/annotations/instances_val2017.json"
    )


def test_root_env_vars_read_at_use(monkeypatch, tmp_path):
    monkeypatch.delenv("DETREX_DATASETS", raising=False)
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert get_datasets_root() == "datasets"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    assert get_datasets_root() == str(tmp_path / "d2")
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path / "dx"))
    assert get_datasets_root() == str(tmp_path / "dx")
    assert MetadataCatalog.get("coco_2017_train").image_root == str(tmp_path / "dx" / "coco/train2017")


def test_missing_coco_folder_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        DatasetCatalog.get("coco_2017_val")
    message = str(info.value)
    assert f"dataset 'coco_2017_val': no {tmp_path}/coco/annotations/instances_val2017.json" in message
    assert "$DETREX_DATASETS, else $DETECTRON2_DATASETS, else ./datasets" in message
    assert "coco/annotations/instances_{train,val}2017.json, coco/{train,val}2017/*.jpg" in message


def test_missing_coco_image_folder_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path))
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no .*coco/val2017\n"):
        get_detection_dataset_dicts("coco_2017_val")

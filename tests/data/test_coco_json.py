import json
import os

import pytest

from detrex.data import (
    BoxMode,
    DatasetCatalog,
    MetadataCatalog,
    convert_to_coco_dict,
    get_detection_dataset_dicts,
    load_coco_json,
    register_coco_instances,
)


def test_load_coco_json_records(tiny_coco, unique_name):
    json_file, image_root, _ = tiny_coco
    name = unique_name()
    dicts = load_coco_json(json_file, image_root, name)
    assert [d["image_id"] for d in dicts] == [10, 11, 12, 13]
    first = dicts[0]
    assert first["file_name"] == os.path.join(image_root, "0.png")
    assert (first["width"], first["height"]) == (64, 48)
    # categories sorted by dataset id: 2 -> 0, 5 -> 1, 9 -> 2
    assert first["annotations"] == [
        {"iscrowd": 0, "bbox": [4.0, 5.0, 20.0, 10.0], "category_id": 1, "bbox_mode": BoxMode.XYWH_ABS},
        {"iscrowd": 0, "bbox": [30.0, 8.0, 12.5, 30.0], "category_id": 0, "bbox_mode": BoxMode.XYWH_ABS},
    ]
    assert [a["iscrowd"] for a in dicts[1]["annotations"]] == [0, 1]
    assert dicts[2]["annotations"] == []
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["two", "five", "nine"]
    assert meta.thing_dataset_id_to_contiguous_id == {2: 0, 5: 1, 9: 2}


def test_load_image_list_without_annotations(tmp_path):
    path = tmp_path / "test.json"
    path.write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 3, "height": 2}], "categories": []})
    )
    assert load_coco_json(str(path), "root") == [
        {
            "file_name": os.path.join("root", "a.jpg"),
            "height": 2,
            "width": 3,
            "image_id": 1,
            "annotations": [],
        }
    ]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_coco_json(str(tmp_path / "missing.json"), str(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "a"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]}))  # fmt: skip
    with pytest.raises(ValueError, match="category_id 3"):
        load_coco_json(str(bad), str(tmp_path))


def test_register_and_filter_empty(tiny_coco, unique_name):
    json_file, image_root, _ = tiny_coco
    name = unique_name()
    register_coco_instances(name, {}, json_file, image_root)
    meta = MetadataCatalog.get(name)
    assert (meta.json_file, meta.image_root, meta.evaluator_type) == (json_file, image_root, "coco")
    kept = get_detection_dataset_dicts(name)  # image 12: no boxes, image 13: only a crowd box
    assert [d["image_id"] for d in kept] == [10, 11]
    every = get_detection_dataset_dicts([name], filter_empty=False)
    assert [d["image_id"] for d in every] == [10, 11, 12, 13]
    assert len(get_detection_dataset_dicts([name, name])) == 4


def test_registering_again_from_a_reloaded_config(tiny_coco, unique_name, tmp_path):
    json_file, image_root, _ = tiny_coco
    name = unique_name()
    config = tmp_path / "my_config.py"
    config.write_text(
        "from detrex.data import register_coco_instances\n"
        f"register_coco_instances({name!r}, {{}}, {json_file!r}, {image_root!r})\n"
        f"dataset = dict(names={name!r})\n"
    )
    from detrex.config import LazyConfig

    for _ in range(2):  # tools/train_net.py loads the config twice in one process
        assert LazyConfig.load(str(config)).dataset.names == name
    assert [d["image_id"] for d in get_detection_dataset_dicts(name)] == [10, 11]
    with pytest.raises(KeyError, match="already registered with json_file="):
        register_coco_instances(name, {}, str(tmp_path / "other.json"), image_root)


def test_concat_with_different_classes_fails(tiny_coco, unique_name):
    json_file, image_root, _ = tiny_coco
    a, b = unique_name(), unique_name()
    register_coco_instances(a, {}, json_file, image_root)
    DatasetCatalog.register(b, lambda: [{"file_name": "x", "image_id": 1, "annotations": []}])
    MetadataCatalog.get(b).set(thing_classes=["other"])
    with pytest.raises(ValueError, match="different thing_classes"):
        get_detection_dataset_dicts([a, b], filter_empty=False)


def test_convert_to_coco_dict_round_trip(tiny_coco, unique_name):
    json_file, image_root, coco = tiny_coco
    name = unique_name()
    register_coco_instances(name, {}, json_file, image_root)
    converted = convert_to_coco_dict(name)
    assert sorted(c["id"] for c in converted["categories"]) == [2, 5, 9]
    assert [i["id"] for i in converted["images"]] == [i["id"] for i in coco["images"]]
    got = [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in converted["annotations"]]
    want = [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in coco["annotations"]]
    assert got == want
    assert [a["area"] for a in converted["annotations"]] == [200.0, 375.0, 1200.0, 2880.0, 400.0]  # box areas


def test_box_mode_convert():
    assert BoxMode.convert([1.0, 2.0, 3.0, 4.0], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [1.0, 2.0, 4.0, 6.0]
    assert BoxMode.convert([1.0, 2.0, 4.0, 6.0], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS) == [1.0, 2.0, 3.0, 4.0]

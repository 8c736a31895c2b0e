import json

import numpy as np
import pytest
from PIL import Image

from detrex.data import DatasetCatalog, MetadataCatalog
from detrex.utils.visualizer import class_color

GAP = 4  # concat_side_by_side's default gap


@pytest.fixture
def results_file(tiny_shapes, tmp_path):
    """For each val image: its first annotation moved by (+3, +2) with score 0.9, plus a 0.2-score box;
    category ids written as the json's ids (contiguous + 1)."""
    dicts = DatasetCatalog.get("tiny_shapes_val")
    results, expected = [], {}
    for d in dicts:
        a = d["annotations"][0]
        x, y, w, h = a["bbox"]
        results.append(
            {
                "image_id": d["image_id"],
                "category_id": a["category_id"] + 1,
                "bbox": [x + 3, y + 2, w, h],
                "score": 0.9,
            }
        )
        results.append({"image_id": d["image_id"], "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.2})
        expected[d["image_id"]] = ([x + 3, y + 2, x + 3 + w, y + 2 + h], a["category_id"])
    path = tmp_path / "coco_instances_results.json"
    path.write_text(json.dumps(results))
    return str(path), dicts, expected


def test_side_by_side(results_file, script, tmp_path, edge_fraction):
    path, dicts, expected = results_file
    out = tmp_path / "vis"
    written = script("tools/visualize_json_results.py").main(
        ["--input", path, "--output", str(out), "--dataset", "tiny_shapes_val", "--conf-threshold", "0.5"]
    )
    assert len(written) == len(dicts) == 2
    for d, file in zip(dicts, written):
        picture = np.asarray(Image.open(file))
        h, w = d["height"], d["width"]
        assert picture.shape == (h, 2 * w + GAP, 3)
        left, right = picture[:, :w], picture[:, w + GAP :]
        for a in d["annotations"]:  # ground truth on the left
            x, y, bw, bh = a["bbox"]
            assert edge_fraction(left, [x, y, x + bw, y + bh], class_color(a["category_id"]), tol=0) > 0.8
        box, cls = expected[d["image_id"]]  # the json's id cls + 1 maps back to class cls
        box = [min(box[0], w - 1), min(box[1], h - 1), min(box[2], w - 1), min(box[3], h - 1)]
        assert edge_fraction(right, box, class_color(cls), tol=0) > 0.8
        assert edge_fraction(right, [1, 1, 21, 21], class_color(0), tol=0) < 0.5  # score 0.2: not drawn


def test_id_map_and_errors(results_file, script, tmp_path, capsys):
    tool = script("tools/visualize_json_results.py")
    metadata = MetadataCatalog.get("tiny_shapes_val")
    assert tool.contiguous_id_map(metadata, {1, 5}) == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
    with pytest.raises(ValueError, match=r"category ids \[91\] unknown"):
        tool.contiguous_id_map(metadata, {1, 91})

    path, _, _ = results_file
    cases = [
        (["--input", "nope.json", "--output", "o", "--dataset", "tiny_shapes_val"], "no such file"),
        (["--input", path, "--output", "o", "--dataset", "tiny_shapes_vall"], "is not registered"),
        (["--input", path, "--dataset", "tiny_shapes_val"], "--output"),
    ]
    bad_ids = tmp_path / "bad.json"
    bad_ids.write_text(
        json.dumps([{"image_id": 12345, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    )
    cases.append((["--input", str(bad_ids), "--output", "o", "--dataset", "tiny_shapes_val"], "12345"))
    for argv, message in cases:
        with pytest.raises(SystemExit) as e:
            tool.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_unreadable_image_is_skipped_with_a_warning(corrupt_image_dataset, script, tmp_path, capsys):
    name, broken = corrupt_image_dataset
    dicts = DatasetCatalog.get(name)
    results = [
        {"image_id": d["image_id"], "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.9} for d in dicts
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    written = script("tools/visualize_json_results.py").main(
        ["--input", str(path), "--output", str(tmp_path / "vis"), "--dataset", name]
    )
    captured = capsys.readouterr()
    assert len(written) == len(dicts) - 1  # the others are still drawn
    assert f"WARNING: skipped image_id {dicts[0]['image_id']}" in captured.err and broken in captured.err
    assert "skipped 1 image(s) that could not be read" in captured.out


def test_dataset_of_a_config_that_registers_it(results_file, tiny_shapes, script, tmp_path, capsys):
    path, dicts, _ = results_file
    folder = tiny_shapes["tiny_shapes_val"]
    config = tmp_path / "my_config.py"
    config.write_text(
        "from detrex.data import register_coco_instances\n"
        f"register_coco_instances('my_val_for_vis', {{}}, {folder + '/annotations.json'!r}, {folder + '/images'!r})\n"
        "dataloader = dict(test=dict(dataset=dict(names='tiny_shapes_train')))\n"
    )
    tool = script("tools/visualize_json_results.py")
    out = tmp_path / "vis"
    # the config's test set, changed by an override to the dataset it registers
    written = tool.main(
        [
            "--input",
            path,
            "--output",
            str(out),
            "--config-file",
            str(config),
            "dataloader.test.dataset.names=my_val_for_vis",
        ]
    )
    assert len(written) == len(dicts)
    for argv, message in [
        (["--input", path, "--output", str(out)], "give --dataset (a registered name) or --config-file"),
        (
            ["--input", path, "--output", str(out), "--dataset", "tiny_shapes_val", "a.b=1"],
            "need --config-file",
        ),
    ]:
        with pytest.raises(SystemExit):
            tool.main(argv)
        assert message in capsys.readouterr().err

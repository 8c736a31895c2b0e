"""Fixtures for tests/evaluation."""

import json
import uuid

import pytest
from coco_eval_helpers import make_ground_truth

from detrex.data import DatasetCatalog, MetadataCatalog, register_coco_instances


@pytest.fixture
def coco_dataset(tmp_path):
    """A registered COCO json dataset: (name, json_file, gt dict); unregistered afterwards."""
    gt = make_ground_truth()
    json_file = tmp_path / "gt.json"
    json_file.write_text(json.dumps(gt))
    name = f"eval_test_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, str(json_file), str(tmp_path))
    yield name, str(json_file), gt
    DatasetCatalog.pop(name, None)
    MetadataCatalog.pop(name, None)

"""The top-level README's claims stay true: its model table is generated from the projects' model zoos,
and the commands it shows name files that exist."""

import os
import re
from pathlib import Path

from projects.anchor_detr.model_zoo import MODEL_ZOO as ANCHOR_ZOO
from projects.conditional_detr.model_zoo import MODEL_ZOO as CONDITIONAL_ZOO

README = Path(__file__).resolve().parents[1] / "README.md"


def overview_table() -> str:
    """One row per published model: the published box AP, the parameter count and where weights come from."""
    rows = [
        "| model | config | box AP (COCO val, published) | #params | weights |",
        "|---|---|---:|---:|---|",
    ]
    for e in ANCHOR_ZOO:
        weights = f"[official]({e.official_weights}), [detrex]({e.detrex_weights})"
        rows.append(
            f"| {e.variant} | [{Path(e.config).name}]({e.config}) | {e.official_box_ap:.1f} | "
            f"{e.num_params / 1e6:.2f}M | {weights} |"
        )
    for e in CONDITIONAL_ZOO:
        rows.append(
            f"| {e.variant} | [{Path(e.config).name}]({e.config}) | {e.box_ap:.1f} | "
            f"{e.num_params / 1e6:.2f}M | [detrex]({e.weights}) |"
        )
    return "\n".join(rows)


def test_readme_model_table_matches_the_model_zoos():
    assert overview_table() in README.read_text(), (
        "regenerate with: python -c 'from tests.test_readme import *; print(overview_table())'"
    )


def test_readme_commands_name_existing_files():
    text = README.read_text()
    paths = set(re.findall(r"((?:tools|demo|projects|configs)/[\w/.-]+\.py)", text))
    assert paths, "the README shows no commands"
    repo = README.parent
    missing = sorted(p for p in paths if not (repo / p).is_file())
    assert not missing, missing


def test_readme_pictures_are_committed_and_small():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    for path in pictures:
        file = README.parent / path
        assert file.is_file(), f"the README shows {path}, which is not in the repository"
        assert file.stat().st_size < 300_000, (
            f"{path}: {file.stat().st_size} bytes; keep pictures under 300 KB"
        )


def readme_tools_section_as_a_page() -> str:
    """The README's "## Tools" section (to the next "## " heading) as docs/tools.md: one level up, so links
    into docs/ lose that prefix."""
    text = README.read_text()
    section = text[text.index("## Tools\n") :]
    end = section.find("\n## ", 1)
    section = section if end == -1 else section[: end + 1]
    section = section.replace("](docs/", "](")
    return section.replace("\n### ", "\n## ").replace("## Tools\n", "# Tools\n", 1)


def test_docs_tools_page_is_the_readme_tools_section():
    page = README.parent / "docs" / "tools.md"
    assert page.read_text() == readme_tools_section_as_a_page(), (
        "edit the README's Tools section, then regenerate: python -c 'from tests.test_readme import *; "
        'open("docs/tools.md", "w").write(readme_tools_section_as_a_page())\''
    )


def own_dataset_section() -> str:
    text = README.read_text()
    start = text.index("**Your own dataset**")
    return text[start : text.index("**Evaluate published weights.**", start)]


def test_own_dataset_example_loads_from_any_folder(tmp_path, monkeypatch):
    """The example config, saved outside the repository, loads: its absolute import needs no relative path."""
    from detrex.config import LazyConfig
    from detrex.data import DatasetCatalog, MetadataCatalog

    section = own_dataset_section()
    example = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    (tmp_path / "my_data.py").write_text(example)
    monkeypatch.chdir(tmp_path)
    try:
        cfg = LazyConfig.load("my_data.py")
        assert cfg.model.num_classes == 3 and cfg.model.criterion.num_classes == 3
        assert (
            cfg.dataloader.train.dataset.names == "my_train" and cfg.dataloader.test.dataset.names == "my_val"
        )
        assert MetadataCatalog.get("my_train").json_file == "path/to/train.json"
    finally:
        for name in ("my_train", "my_val"):
            if name in DatasetCatalog:
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)


def test_own_dataset_section_names_the_offline_and_cpu_settings():
    section = own_dataset_section()
    for setting in ("train.init_checkpoint=''", "train.device=cpu", "dataloader.train.total_batch_size=2",
                    "dataloader.train.num_workers"):  # fmt: skip
        assert setting in section, setting


def test_visualize_json_results_example_reads_where_the_evaluator_writes():
    from detrex.config import LazyConfig

    config = README.parent / "projects/conditional_detr/configs/conditional_detr_r50_50ep.py"
    output_dir = LazyConfig.load(config).train.output_dir
    results = f"{os.path.normpath(output_dir)}/inference/coco_instances_results.json"
    assert f"--input {results}" in README.read_text()

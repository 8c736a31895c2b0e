"""The top-level README's claims stay true: its model table is generated from the projects' model zoos,
and the commands it shows name files that exist."""

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

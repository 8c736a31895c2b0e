"""`--help` of every script in tools/ and demo/: example commands print as written, one line each, with a
visible backslash where they continue (a backslash line continuation in a plain docstring joined them)."""

import glob
import os
import re

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = sorted(
    os.path.relpath(p, REPO_ROOT)
    for d in ("tools", "demo")
    for p in glob.glob(os.path.join(REPO_ROOT, d, "*.py"))
)


@pytest.mark.parametrize("relpath", SCRIPTS)
def test_help_examples_keep_their_lines(relpath, script):
    module = script(relpath)
    parser = module.get_parser() if hasattr(module, "get_parser") else module.default_argument_parser()
    lines = parser.format_help().splitlines()
    commands = [i for i, line in enumerate(lines) if re.match(r"\s*(\(\w+\))?(python |\$ )", line)]
    assert commands, f"{relpath}: --help shows no example command"
    for i in commands:
        while True:
            assert not re.search(r"\S {4,}\S", lines[i]), f"{relpath}: joined lines in --help: {lines[i]!r}"
            if not lines[i].endswith(" \\"):
                break
            i += 1  # a continued command goes on, indented, on the next line
            assert lines[i].startswith("        "), f"{relpath}: {lines[i - 1]!r} continues on {lines[i]!r}"

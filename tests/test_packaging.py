"""environment.yml (conda-forge) must list the same dependencies as pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
                  + project["optional-dependencies"]["docs"])
    wanted = {CONDA_NAMES.get(name, name): spec for name, spec in wanted.items()}
    conda = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        match = re.match(r"^  - ([A-Za-z][^#]*?)\s*(#.*)?$", line)
        if match and not match.group(1).startswith(("pip", "python")):
            name, spec = _split(match.group(1))
            conda[name] = spec
    assert conda == wanted


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash pipelines/test.sh" in readme and "bash pipelines/test.sh" in ci
    assert "bash pipelines/quickstart.sh" in readme


def test_generated_reference_pages_are_current():
    from molvae.cli.reference import PAGES

    for name, render in PAGES.items():
        committed = (ROOT / "docs" / "reference" / name).read_text()
        assert committed == render(), f"docs/reference/{name} is stale: run python -m molvae.cli.reference"


def test_readme_is_a_newcomers_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200

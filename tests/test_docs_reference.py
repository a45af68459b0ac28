"""The reference pages of the documentation site (docs/reference/) are generated from the code by
``python -m molvae.cli.reference``: they must be current, cover every command, option and
configuration key, and not depend on the terminal they were generated in."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
REGENERATE = "python -m molvae.cli.reference"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from molvae.cli import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_committed_reference_pages_are_the_generated_ones():
    from molvae.cli.reference import PAGES

    for name, render in PAGES.items():
        committed = (REFERENCE / name).read_text()
        assert committed == render(), f"docs/reference/{name} is out of date: run `{REGENERATE}` and commit it"


def test_every_command_and_option_is_on_the_cli_page():
    page = (REFERENCE / "cli.md").read_text()
    sections = {block.split("`", 2)[1]: block for block in page.split("\n## ")[1:]}
    for name, sub in _subcommands().items():
        assert f"molvae {name}" in sections, f"molvae {name} is missing from docs/reference/cli.md"
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in sections[f"molvae {name}"], f"molvae {name} {option} is undocumented"


@pytest.mark.parametrize("section", ["data", "model", "train", "sample", "tracking", "optimize"])
def test_every_configuration_key_is_on_the_config_page_with_its_default(section):
    from molvae.config import RunConfig, toml_value
    from molvae.optimize import OptimizeConfig

    cls = (typing.get_type_hints(RunConfig) | {"optimize": OptimizeConfig})[section]
    page = (REFERENCE / "config.md").read_text()
    table = page.split(f"**[{section}]**", 1)[1].split("**[", 1)[0]
    defaults = cls()
    for field in dataclasses.fields(cls):
        if (section, field.name) == ("model", "vocab_size"):  # set from the data, not configurable
            continue
        row = f"| `{field.name}` | `{toml_value(getattr(defaults, field.name))}` |"
        assert row in table, f"[{section}] {field.name} is missing or has a stale default: run `{REGENERATE}`"


def test_the_pages_do_not_depend_on_the_terminal(monkeypatch):
    from molvae.cli.reference import PAGES

    rendered = []
    for columns in ("40", "300"):
        monkeypatch.setenv("COLUMNS", columns)
        rendered.append({name: render() for name, render in PAGES.items()})
    assert rendered[0] == rendered[1]


def test_a_key_carries_its_whole_comment_and_no_group_heading():
    """A field's comment may go on below it; the comment lines heading the next group of fields (after a
    blank line) belong to no key."""
    from molvae.config import reference_markdown
    from molvae.optimize import OptimizeConfig

    table = reference_markdown({"optimize": OptimizeConfig})
    rows = {line.split("`")[1]: line for line in table.splitlines() if line.startswith("| `")}
    assert rows["neighbourhood_elites"].endswith("(1 = hill climbing); 0 = 16 from random starts, 1 around a seed "
                                                 "(16 there was within noise of 1: docs/results.md) |")
    assert rows["seed"].endswith("| seeds starts, noise, BO and extra decodes |")  # not "... surrogate (property ..."


def test_config_page_gives_the_population_search_defaults():
    from molvae.config import toml_value
    from molvae.optimize import POPULATION_SEARCH

    intro = (REFERENCE / "config.md").read_text().split("## Optimization runs", 1)[1].split("**[optimize]**", 1)[0]
    for key, value in POPULATION_SEARCH.items():
        assert f"`{key} = {toml_value(value)}`" in intro, f"POPULATION_SEARCH's {key} is not on the config page"

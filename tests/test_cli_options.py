"""Every numeric option of every command, given 0, a negative number, nan, inf or a huge value,
either ends in a one-line error that names the option (exit 2, before any work) or runs correctly."""

from __future__ import annotations

import argparse

import pytest

from molvae.cli import build_parser, main
from molvae.cli.common import Number

from .conftest import MOLECULES_CSV

VALUES = ["0", "-5", "nan", "inf", "1e30"]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _numeric_options() -> list[tuple[str, str]]:
    found = []
    for name, parser in _subcommands().items():
        for action in parser._actions:
            assert action.type not in (int, float), f"molvae {name} {action.option_strings[0]}: a plain {action.type}"
            if isinstance(action.type, Number):
                found.append((name, action.option_strings[-1]))
    return found


def _base_args(command: str, model: str, tmp) -> list[str]:
    """The smallest command line of each subcommand that runs in a second or two on the tiny model."""
    read = ["--model", model, "--input", str(MOLECULES_CSV)]
    return {
        "train": ["--data", str(MOLECULES_CSV), "--out", str(tmp / "t"), "--no-track"],
        "sample": ["--model", model, "-n", "4", "--out", str(tmp / "s.csv")],
        "encode": [*read, "--out", str(tmp / "e.csv")],
        "reconstruct": [*read, "--beam", "1", "--out", str(tmp / "r.csv")],
        "score": [*read, "--samples", "1", "--out", str(tmp / "sc.csv")],
        "interpolate": ["--model", model, "--start", "CCO", "--end", "c1ccccc1O", "--steps", "3",
                        "--out", str(tmp / "i.png")],
        "around": ["--model", model, "--smiles", "CCO", "-n", "4", "--out", str(tmp / "a.csv")],
        "map": ["--model", model, "--data", str(MOLECULES_CSV), "--max", "20", "--out", str(tmp / "m.png")],
        "fit-prior": ["--model", model, "--count", "8", "--out", str(tmp / "p.pt")],
        "fit-head": ["--model", model, "--data", str(MOLECULES_CSV), "--count", "40", "--epochs", "1",
                     "--workers", "1", "--out", str(tmp / "h.pt")],
        "bench": ["--data", str(MOLECULES_CSV), "--model", model, "--steps", "1", "--n-sample", "4",
                  "--batch-size", "8", "--no-reference", "--device", "cpu"],
        "optimize": ["--model", model, "--objective", "qed:max", "--method", "random", "--budget", "4",
                     "--batch-size", "4", "--surrogate", "none", "--no-track", "--out", str(tmp / "o")],
    }[command]


OPTIONS = _numeric_options()


def test_every_command_with_numbers_is_covered():
    commands = {command for command, _ in OPTIONS}
    assert commands == {"train", "sample", "encode", "reconstruct", "score", "interpolate", "around", "map",
                        "fit-prior", "fit-head", "bench", "optimize"}
    assert len(OPTIONS) >= 35


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[f"{c} {o}" for c, o in OPTIONS])
def test_numeric_option_refuses_what_it_cannot_use_in_one_line(command, option, trained_run, tmp_path, capsys):
    model = str(trained_run.out_dir / "model.pt")
    for value in VALUES:
        code = main([command, *_base_args(command, model, tmp_path), f"{option}={value}"])
        err = capsys.readouterr().err
        if code == 2:
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert f"argument {option}" in err and f"got {value!r}" in err, err
        else:
            assert code == 0, f"molvae {command} {option}={value}: exit {code}\n{err}"


@pytest.mark.parametrize("argv", [["sample", "-n", "0"], ["sample", "-n", "-5"], ["sample", "--temperature", "-1"],
                                  ["sample", "--spread", "nan"], ["optimize", "--budget", "-1"]])
def test_the_options_users_met_first(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"molvae {argv[0]}: error: argument {argv[1]}: must be ") and err.count("\n") == 1


def _numeric_config_keys() -> list[str]:
    import dataclasses
    import typing

    from molvae.config import _NOT_CONFIGURABLE, _SECTIONS, _section_class

    keys = []
    for section in _SECTIONS:
        hints = typing.get_type_hints(_section_class(section))
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(_section_class(section))
                 if hints[f.name] in (int, float) and (section, f.name) not in _NOT_CONFIGURABLE]
    return keys


@pytest.mark.parametrize("key", _numeric_config_keys())
def test_every_numeric_config_key_refuses_negative_nan_and_inf(key, tmp_path, capsys):
    for value in ("-5", "nan", "inf"):
        code = main(["train", "--data", str(MOLECULES_CSV), "--out", str(tmp_path / "t"), "--no-track",
                     "--set", f"{key}={value}"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and key in err, (value, err)
    assert not (tmp_path / "t").exists()  # refused before any work


def test_the_recipes_are_within_range():
    from pathlib import Path

    from molvae.config import load_config

    recipes = sorted((Path(__file__).resolve().parent.parent / "pipelines" / "recipes").glob("*.toml"))
    for recipe in recipes:
        if "objective" not in recipe.read_text() and "[optimize]" not in recipe.read_text():
            load_config(recipe)

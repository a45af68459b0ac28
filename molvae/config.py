"""Run configuration: one TOML file, one section per component, unknown keys refused.

Each section maps onto the config dataclass its component owns (``[data]`` -> DataConfig,
``[model]`` -> ModelConfig, ``[train]`` -> TrainConfig, ``[sample]`` -> SampleConfig,
``[tracking]`` -> TrackingConfig). ``--set section.key=value`` on the command line overrides
a key with the same name and type checks.

>>> cfg = load_config(None, ["train.epochs=3", "model.latent_dim=32"])
>>> cfg.train.epochs, cfg.model.latent_dim
(3, 32)
>>> load_config(None, ["train.epoch=3"])
Traceback (most recent call last):
...
molvae.errors.ConfigError: unknown key 'epoch' in [train]; known keys: ...
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molvae.data import DataConfig
from molvae.errors import ConfigError
from molvae.model import ModelConfig
from molvae.ranges import Range
from molvae.tracking import TrackingConfig
from molvae.training import TrainConfig

__all__ = ["ConfigError", "RunConfig", "SampleConfig", "build_dataclass", "load_config", "parse_pairs", "read_toml",
           "to_toml", "toml_value"]


@dataclass(frozen=True)
class SampleConfig:
    """Prior sampling after training and by ``molvae sample``."""

    n: int = 2000  # molecules to sample
    temperature: float = 1.0  # softmax temperature (0 = greedy)
    top_k: int = 0  # sample among the k likeliest tokens (0 = all)
    batch_size: int = 1024  # latent points decoded at once
    seed: int = 0  # seed of the latent draws and token sampling
    canonical: bool = True  # keep only decodes that are canonical SELFIES strings, drawing more until n (docs/studies/2026-12-02-canonical-sampling.md)
    novel: bool = False  # keep only molecules that are not in the training set, drawing more until n
    seen_rings: bool = True  # keep only molecules whose ring sizes all occur in the training molecules (8+ rings from drug-like data are left out)
    max_draws: float = 20.0  # canonical (or novel) sampling draws at most this many latent points per molecule asked for
    grid_size: int = 48  # molecules drawn in the PNG grid


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        sections = dataclasses.asdict(self)
        sections["model"].pop("vocab_size")  # derived from the data, not configured
        return sections


_SECTIONS = {f.name: f.type for f in dataclasses.fields(RunConfig)}
_NOT_CONFIGURABLE = {("model", "vocab_size")}


def _section_class(name: str) -> type:
    return {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "sample": SampleConfig,
            "tracking": TrackingConfig}[name]


# The range of each numeric key that is not simply "finite and >= 0": (low, high, low excluded).
_RANGES: dict[tuple[str, str], tuple[float, float | None, bool]] = {
    ("data", "max_tokens"): (4, None, False), ("data", "max_smiles_chars"): (1, None, False),
    ("data", "max_heavy_atoms"): (1, None, False), ("data", "max_reject_fraction"): (0, 1, False),
    ("data", "validation_fraction"): (0, 0.9, False),
    **{("model", key): (1, None, False) for key in ("embedding_dim", "encoder_hidden", "encoder_layers", "latent_dim",
                                                   "decoder_hidden", "decoder_layers", "property_hidden",
                                                   "property_layers", "prior_layers", "prior_hidden",
                                                   "prior_components")},
    ("model", "dropout"): (0, 0.99, False), ("model", "exemplar_spread"): (0, 100, True),
    ("train", "epochs"): (1, None, False), ("train", "batch_size"): (1, None, False),
    ("train", "learning_rate"): (0, None, True), ("train", "kl_cycles"): (1, None, False),
    ("train", "kl_ramp_fraction"): (0, 1, False), ("train", "word_dropout"): (0, 0.99, False),
    ("sample", "temperature"): (0, 100, False), ("sample", "batch_size"): (1, None, False),
    ("sample", "max_draws"): (1, None, False),
}


def _in_range(section: str, key: str, value: float) -> float:
    """``value`` if it is finite and within the key's range (:data:`_RANGES`, else >= 0)."""
    low, high, low_open = _RANGES.get((section, key), (0, None, False))
    try:
        Range(type(value), low, high, low_open).check(value, f"{section}.{key}")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return value


def _coerce(section: str, key: str, value: Any, annotation: Any) -> Any:
    where = f"{section}.{key}"
    hint = annotation
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
        return list(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return _in_range(section, key, value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return _in_range(section, key, float(value))
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint!r}")


def build_dataclass(cls: type, values: Mapping[str, Any], section: str, base: Any = None) -> Any:
    """A configuration dataclass from a TOML table (over ``base``, else the defaults): every value
    coerced to its field's type, an unknown key an error that names it and the known ones.

    >>> from molvae.tracking import TrackingConfig
    >>> build_dataclass(TrackingConfig, {"experiment": "mine"}, "tracking").experiment
    'mine'
    >>> build_dataclass(TrackingConfig, {"experimnt": "mine"}, "tracking")
    Traceback (most recent call last):
    ...
    molvae.errors.ConfigError: unknown key 'experimnt' in [tracking]; known keys: enabled, uri, experiment, ...
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if (section, f.name) not in _NOT_CONFIGURABLE]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown key {key!r} in [{section}]; known keys: {', '.join(known)}")
        kwargs[key] = _coerce(section, key, value, hints[key])
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def read_toml(path: str | os.PathLike, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a :class:`ConfigError` naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()  # bare words are strings: device=cuda


def _parse_override(text: str) -> tuple[str, str, Any]:
    path, sep, raw = text.partition("=")
    section, dot, key = path.strip().partition(".")
    if not sep or not dot:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.epochs=5)")
    return section, key.strip(), _parse_value(raw)




def parse_pairs(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are read as TOML (numbers, booleans), else kept as text.

    >>> parse_pairs(["budget=50", "surrogate=ensemble", "no_pains=true"], "--set")
    {'budget': 50, 'surrogate': 'ensemble', 'no_pains': True}
    """
    values = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r} must look like KEY=VALUE")
        values[key.strip()] = _parse_value(text)
    return values



def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the TOML file (if any), then ``section.key=value`` overrides."""
    raw: dict[str, dict[str, Any]] = read_toml(path) if path is not None else {}
    for override in overrides or []:
        section, key, value = _parse_override(override)
        raw.setdefault(section, {})[key] = value
    for section, values in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown section [{section}]; known sections: {', '.join(_SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys")
    return RunConfig(**{name: build_dataclass(_section_class(name), raw.get(name, {}), name) for name in _SECTIONS})


def to_toml(config: RunConfig) -> str:
    """The resolved configuration as TOML, loadable by :func:`load_config`."""
    lines = []
    for section, values in config.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    """A value as TOML writes it (a string quoted, a list bracketed).

    >>> toml_value("cuda"), toml_value([1, 2]), toml_value(True)
    ('"cuda"', '[1, 2]', 'true')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def reference_markdown(sections: Mapping[str, type] | None = None) -> str:
    """Markdown tables of every configurable key with its default and the comment beside its field
    (default: the sections of a training run's TOML file)."""
    import inspect
    import re

    parts = []
    for section, cls in (sections or {name: _section_class(name) for name in _SECTIONS}).items():
        source = inspect.getsource(cls)
        parts += [f"**[{section}]**", "", "| key | default | meaning |", "|---|---|---|"]
        defaults = cls()
        for f in dataclasses.fields(cls):
            if (section, f.name) in _NOT_CONFIGURABLE:
                continue
            # the comment beside the field and the comment lines right below it (a blank line ends it)
            comment = re.search(rf"^\s+{f.name}:[^\n]*?#\s*([^\n]*)((?:\n[ \t]+#[^\n]*)*)", source, re.MULTILINE)
            meaning = ""
            if comment:
                below = [line.strip().lstrip("#").strip() for line in comment.group(2).splitlines()]
                meaning = " ".join([comment.group(1), *filter(None, below)]).replace("|", "\\|")
            parts.append(f"| `{f.name}` | `{toml_value(getattr(defaults, f.name))}` | {meaning} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"

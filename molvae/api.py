"""molvae in Python: one import, one object.

>>> import molvae
>>> model = molvae.load()                      # the shipped sampling model
>>> samples = model.sample(10, seed=0)
>>> len(samples), bool(samples["valid"].all())
(10, True)

Every method returns a :class:`pandas.DataFrame` with one molecule per row and the columns the
matching ``molvae`` command writes. Methods that read molecules keep every input row: one that
cannot be read has an empty result and a ``reason`` (and ``detail``) instead of raising. Bad
arguments raise :class:`ValueError` naming the argument.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import molvae  # noqa: F401  (the docstring examples call molvae.load(), as a user does)
from molvae.checkpoint import PRETRAINED, PRETRAINED_LEAD, LoadedModel, load_model
from molvae.device import resolve_device
from molvae.errors import UserError
from molvae.ranges import Range

__all__ = ["Model", "evaluate", "load", "score_objective", "train"]

SHIPPED = {"sampling": PRETRAINED, "lead": PRETRAINED_LEAD}  # the models molvae ships, by name


def load(model: str | os.PathLike = "sampling", device: str = "auto") -> Model:
    """A model ready to use: ``"sampling"`` (the shipped model for generating molecules, the default),
    ``"lead"`` (the shipped model for reading, rewriting and optimizing molecules) or the path of a
    checkpoint written by ``molvae train``. ``device``: ``auto`` (a GPU when there is one), ``cpu``,
    ``cuda`` or ``cuda:N``.

    >>> molvae.load("lead").latent_size
    48
    """
    path = SHIPPED.get(str(model), Path(model))
    if str(model) in SHIPPED and not path.exists():
        raise UserError(f"the shipped {model} model is not installed at {path}")
    return Model(load_model(path, resolve_device(device)), str(path))


def _number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
            integer: bool = False, low_open: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number in range."""
    Range(int if integer else float, low, high, low_open).check(value, name)


def _smiles_list(smiles: str | Sequence[str]) -> list[str]:
    if isinstance(smiles, str):
        return [smiles]
    if isinstance(smiles, pd.Series):
        return smiles.tolist()
    return list(smiles)


@dataclass
class Model:
    """A trained molvae model: sample, read, rewrite and optimize molecules with it."""

    loaded: LoadedModel  # the model, its vocabulary and what it carries (see molvae.checkpoint)
    path: str  # the checkpoint it was loaded from

    def __repr__(self) -> str:
        return f"molvae.Model({self.path!r}, latent_size={self.latent_size}, device={self.device})"

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def latent_size(self) -> int:
        return self.loaded.model.config.latent_dim

    @property
    def properties(self) -> tuple[str, ...]:
        """The RDKit properties the model predicts from a latent point (its property head)."""
        return tuple(self.loaded.model.config.property_names)

    # --- generating -----------------------------------------------------------------------------

    @contextmanager
    def _spread(self, spread: float | None) -> Iterator[None]:
        """The exemplar prior widened by ``spread`` for the duration (None: as the model has it)."""
        exemplars = self.loaded.model.exemplars
        if spread is None:
            yield
            return
        _number("spread", spread, 0, 100, low_open=True)
        if exemplars is None or not exemplars.fitted:
            raise UserError(f"{self.path} samples from its trained prior, not from exemplars: spread does not "
                            "apply (give it one with `molvae fit-prior`)")
        before = exemplars.spread
        exemplars.spread = float(spread)
        try:
            yield
        finally:
            exemplars.spread = before

    def sample(self, n: int = 1000, *, seed: int = 0, temperature: float = 1.0, top_k: int = 0,
               spread: float | None = None, canonical: bool = True, seen_rings: bool = True, novel: bool = False,
               train: str | os.PathLike | None = None, batch_size: int = 1024) -> pd.DataFrame:
        """``n`` molecules from the model's prior: ``smiles``, ``valid``, ``novel`` (against ``train``,
        else the training set the model carries) and RDKit properties. ``spread`` widens the
        exemplar prior (higher: more novel, less like the data); ``novel`` keeps only molecules
        outside the training set; ``temperature`` 0 decodes greedily. The metrics of the set
        (validity, uniqueness, novelty, diversity, property means) are in ``.attrs["metrics"]``.

        >>> table = molvae.load().sample(5, seed=1, spread=1.0)
        >>> list(table.columns[:3])
        ['smiles', 'valid', 'novel']
        >>> round(table.attrs["metrics"]["validity"], 2)
        1.0
        """
        from molvae.config import SampleConfig
        from molvae.experiment import sample_molecules
        from molvae.trainset import novelty_reference

        _number("n", n, 1, 10**8, integer=True)
        _number("temperature", temperature, 0, 100)
        _number("top_k", top_k, 0, integer=True)
        _number("seed", seed, 0, 2**63 - 1, integer=True)
        _number("batch_size", batch_size, 1, 10**6, integer=True)
        config = SampleConfig(n=int(n), temperature=float(temperature), top_k=int(top_k), seed=int(seed),
                              batch_size=int(batch_size), canonical=canonical, seen_rings=seen_rings, novel=novel)
        training = novelty_reference(self.loaded, str(train) if train else None)
        with self._spread(spread):
            table, metrics = sample_molecules(self.loaded, config, training)
        table.attrs["metrics"] = metrics
        return table

    def around(self, smiles: str, *, n: int = 24, radius: float = 0.5, seed: int = 0) -> pd.DataFrame:
        """``n`` greedy decodes of points drawn within ``radius`` (a standard deviation) of a molecule's
        encoding: ``smiles``, ``valid`` and RDKit properties.

        >>> lead = molvae.load("lead")
        >>> len(lead.around("CC(=O)Oc1ccccc1C(=O)O", n=4))
        4
        """
        from molvae.report import sample_table
        from molvae.sample import sample_around

        _number("n", n, 1, 10**7, integer=True)
        _number("radius", radius, 0, 100)
        _number("seed", seed, 0, 2**63 - 1, integer=True)
        return sample_table(sample_around(self.loaded, smiles, int(n), float(radius), int(seed)))

    def interpolate(self, start: str, end: str, *, steps: int = 8, spherical: bool = True) -> pd.DataFrame:
        """Greedy decodes of ``steps`` points on the latent path from ``start`` to ``end``: ``step``, ``smiles``.

        >>> molvae.load("lead").interpolate("CCO", "c1ccccc1O", steps=3)["step"].tolist()
        [0, 1, 2]
        """
        from molvae.sample import interpolate

        _number("steps", steps, 2, 10**4, integer=True)
        path = interpolate(self.loaded, start, end, int(steps), spherical=spherical)
        return pd.DataFrame({"step": range(len(path)), "smiles": pd.Series(path, dtype=object)})

    # --- reading --------------------------------------------------------------------------------

    def _encode(self, smiles: str | Sequence[str], refine: int, what: str = "refine"):
        from molvae.sample import encode_smiles

        _number(what, refine, 0, 10**4, integer=True)
        inputs = _smiles_list(smiles)
        return inputs, encode_smiles(self.loaded, inputs, refine=int(refine))

    @staticmethod
    def _rows(encoded, inputs: list[str]) -> pd.DataFrame:
        """One row per input, in input order: ``row`` (1-based), ``input``, ``smiles`` (canonical, as the
        model read it; empty when rejected), ``reason`` and ``detail`` (empty when read)."""
        frame = pd.DataFrame({"row": range(1, len(inputs) + 1), "input": inputs,
                              "smiles": pd.Series([None] * len(inputs), dtype=object),
                              "reason": pd.Series([None] * len(inputs), dtype=object),
                              "detail": pd.Series([None] * len(inputs), dtype=object)})
        frame.loc[encoded.index, "smiles"] = encoded.smiles
        for position, reason, detail in encoded.rejected:
            frame.loc[position, ["reason", "detail"]] = [reason, detail]
        return frame

    def encode(self, smiles: str | Sequence[str], *, refine: int = 0) -> pd.DataFrame:
        """Latent coordinates of molecules: ``z0``, ``z1``, ... (the encoder mean; moved by ``refine``
        gradient steps toward the point the decoder writes the molecule from best).

        >>> frame = molvae.load("lead").encode(["CCO", "not a molecule"])
        >>> frame[["input", "reason"]].values.tolist()
        [['CCO', None], ['not a molecule', 'unparsable']]
        """
        inputs, encoded = self._encode(smiles, refine)
        frame = self._rows(encoded, inputs)
        latent = np.full((len(inputs), self.latent_size), np.nan)
        latent[encoded.index] = encoded.mu.numpy()
        return pd.concat([frame, pd.DataFrame(latent, columns=[f"z{i}" for i in range(self.latent_size)])], axis=1)

    def decode(self, z: Any, *, beam: int = 1) -> pd.DataFrame:
        """Molecules written from latent points: an array of shape (N, latent_size), or the frame
        :meth:`encode` returns (its ``z0``... columns). ``beam`` > 1 keeps the likeliest canonical
        decode of a beam search; rows with missing coordinates give an empty ``smiles``.

        >>> lead = molvae.load("lead")
        >>> lead.decode(lead.encode("CC(=O)Oc1ccccc1C(=O)O", refine=10))["smiles"].tolist()
        ['CC(=O)Oc1ccccc1C(=O)O']
        """
        _number("beam", beam, 1, 1000, integer=True)
        if isinstance(z, pd.DataFrame):
            z = z[[f"z{i}" for i in range(self.latent_size)]].to_numpy(dtype=float)
        points = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if points.dim() != 2 or points.size(1) != self.latent_size:
            raise ValueError(f"z must have shape (N, {self.latent_size}), got {tuple(points.shape)}")
        return pd.DataFrame({"smiles": pd.Series(self._decode(points, int(beam)), dtype=object)})

    def _decode(self, points: torch.Tensor, beam: int) -> list[str | None]:
        """Canonical SMILES (None: no molecule) of the points (N, Z); rows with a NaN stay None."""
        from molvae.sample import decode_beam, decode_latents

        known = torch.isfinite(points).all(dim=1)
        smiles: list[str | None] = [None] * len(points)
        if known.any():
            chosen = points[known].to(self.device)
            decoded = decode_latents(self.loaded, chosen, temperature=0.0) if beam == 1 else \
                decode_beam(self.loaded, chosen, beam)
            for position, value in zip(known.nonzero().flatten().tolist(), decoded):
                smiles[position] = value
        return smiles

    def reconstruct(self, smiles: str | Sequence[str], *, beam: int = 10, refine: int | None = None) -> pd.DataFrame:
        """Encode and decode molecules: ``reconstruction``, ``exact`` (the same canonical SMILES) and
        ``tanimoto`` (Morgan r=2 similarity of the decode to the input). ``refine`` defaults to
        :data:`molvae.sample.REFINE_STEPS`; ``beam`` 1 decodes greedily.

        >>> molvae.load("lead").reconstruct(["c1ccccc1O"])["exact"].tolist()
        [True]
        """
        from molvae.chem import tanimoto, to_mol
        from molvae.sample import REFINE_STEPS

        inputs, encoded = self._encode(smiles, REFINE_STEPS if refine is None else refine)
        frame = self._rows(encoded, inputs)
        _number("beam", beam, 1, 1000, integer=True)
        decoded = self._decode(encoded.mu, int(beam))
        frame["reconstruction"] = pd.Series([None] * len(inputs), dtype=object)
        frame["exact"] = pd.Series([None] * len(inputs), dtype=object)
        frame["tanimoto"] = np.nan
        for position, read, written in zip(encoded.index, encoded.smiles, decoded):
            frame.at[position, "reconstruction"] = written
            frame.at[position, "exact"] = written is not None and written == read
            frame.at[position, "tanimoto"] = tanimoto(to_mol(written), to_mol(read)) if written else 0.0
        return frame

    def score(self, smiles: str | Sequence[str], *, samples: int = 4, seed: int = 0) -> pd.DataFrame:
        """How unlike the training data each molecule is: ``reconstruction_nll``, ``kl`` and their sum
        ``neg_elbo`` (nats; higher = less like the training data), averaged over ``samples`` draws of z.

        >>> frame = molvae.load("lead").score(["CCO", "c1ccccc1O"])
        >>> bool((frame["neg_elbo"] > 0).all())
        True
        """
        from molvae.sample import elbo_scores

        _number("samples", samples, 1, 10**4, integer=True)
        _number("seed", seed, 0, 2**63 - 1, integer=True)
        inputs = _smiles_list(smiles)
        encoded, nll, kl = elbo_scores(self.loaded, inputs, n_samples=int(samples), seed=int(seed))
        frame = self._rows(encoded, inputs)
        for name, values in (("reconstruction_nll", nll), ("kl", kl)):
            frame[name] = np.nan
            frame.loc[encoded.index, name] = values.numpy()
        frame["neg_elbo"] = frame["reconstruction_nll"] + frame["kl"]
        return frame

    def latent_map(self, smiles: str | Sequence[str], *, prop: str = "qed") -> pd.DataFrame:
        """A 2-D PCA map of the encodings coloured by an RDKit property: ``smiles``, ``pc1``, ``pc2``, ``prop``."""
        from molvae.chem import PROPERTIES, to_mol

        if prop not in PROPERTIES:
            raise ValueError(f"unknown property {prop!r}; choose from {', '.join(PROPERTIES)}")
        _, encoded = self._encode(smiles, 0)
        if len(encoded.smiles) < 3:
            raise UserError("need at least 3 encodable molecules for a map")
        centred = encoded.mu - encoded.mu.mean(dim=0)
        _, _, v = torch.pca_lowrank(centred, q=2, center=False)
        coords = centred @ v[:, :2]  # (N, 2)
        return pd.DataFrame({"smiles": encoded.smiles, "pc1": coords[:, 0].numpy(), "pc2": coords[:, 1].numpy(),
                             prop: [PROPERTIES[prop](to_mol(s)) for s in encoded.smiles]})

    # --- refitting parts ------------------------------------------------------------------------

    def _molecules(self, smiles: str | Sequence[str] | None, what: str) -> list[str]:
        from molvae.trainset import surrogate_molecules

        molecules = _smiles_list(smiles) if smiles is not None else surrogate_molecules(self.loaded)
        if not molecules:
            raise UserError(f"no molecules to fit the {what} on: give some (the model carries no training sample "
                            "and its training file is not found)")
        return molecules

    def _with(self, model, meta: dict[str, Any]) -> Model:
        """This model with other weights (a refitted part) and checkpoint metadata, in memory."""
        loaded = LoadedModel(model.to(self.device), self.loaded.vocab, self.loaded.max_length, meta)
        return Model(loaded, self.path)

    def fit_prior(self, smiles: str | Sequence[str] | None = None, *, kind: str = "exemplars",
                  count: int | None = None, spread: float | None = None, steps: int = 3000, seed: int = 0,
                  source: str | None = None) -> tuple[Model, dict[str, float]]:
        """A copy whose sampling prior is fitted to where the encoder puts ``smiles`` (default: the
        training sample the checkpoint carries), encoder and decoder frozen: ``exemplars`` draws from
        the posteriors of ``count`` of them widened by ``spread``; ``flow`` fits a RealNVP prior in
        ``steps``. Returns the model (see :meth:`save`) and figures of the fit."""
        from molvae.model import ModelConfig
        from molvae.prior import fit_exemplar_prior, fit_prior

        if kind not in ("exemplars", "flow"):
            raise ValueError(f"kind must be exemplars or flow, got {kind!r}")
        count = ModelConfig.exemplars if count is None else count
        spread = ModelConfig.exemplar_spread if spread is None else spread
        _number("count", count, 1, 10**8, integer=True)
        _number("spread", spread, 0, 100, low_open=True)
        _number("steps", steps, 1, 10**7, integer=True)
        _number("seed", seed, 0, 2**63 - 1, integer=True)
        molecules = self._molecules(smiles, "prior")
        source = source or ("training sample" if smiles is None else "given molecules")
        if kind == "exemplars":
            model = fit_exemplar_prior(self.loaded, molecules, count=int(count), spread=float(spread), seed=int(seed))
            figures = {"kind": "exemplars", "exemplars": model.exemplars.means.size(0), "spread": float(spread)}
            return self._with(model, {**self.loaded.meta, "prior_fit": {**figures, "data": source}}), figures
        model, figures = fit_prior(self.loaded, molecules, steps=int(steps), seed=int(seed))
        return self._with(model, {**self.loaded.meta, "prior_fit": {**figures, "steps": steps, "data": source}}), figures

    def fit_head(self, smiles: str | Sequence[str] | None = None, *, properties: Sequence[str] | None = None,
                 count: int = 200_000, exclude: str | os.PathLike | None = None, hidden: int = 256, layers: int = 2,
                 epochs: int = 60, workers: int = 0, seed: int = 0, cache: str | os.PathLike | None = None,
                 source: str | None = None) -> tuple[Model, dict[str, float]]:
        """A copy whose property head predicts ``properties`` (RDKit names; default: the model's, else
        qed, plogp_raw, logp and sa), fitted on the encodings of at most ``count`` of ``smiles``
        (default: the training sample the checkpoint carries) less the molecules of the file
        ``exclude`` (a test set, standardized alike). Returns the model and the fit's figures
        (molecules used and dropped, held-out R² and MAE per property, before and now)."""
        import torch

        from molvae.data import standardized_set
        from molvae.head import fit_property_head

        for name, value, low, high in (("count", count, 20, 10**8), ("hidden", hidden, 1, 65536),
                                       ("layers", layers, 1, 64), ("epochs", epochs, 1, 10**5),
                                       ("workers", workers, 0, 4096), ("seed", seed, 0, 2**63 - 1)):
            _number(name, value, low, high, integer=True)
        names = list(properties or self.properties or ("qed", "plogp_raw", "logp", "sa"))
        molecules = self._molecules(smiles, "head")
        if len(molecules) > count:
            order = torch.randperm(len(molecules), generator=torch.Generator().manual_seed(int(seed)))[:int(count)]
            molecules = [molecules[i] for i in order.tolist()]
        excluded = standardized_set(exclude, self.loaded.standardize_options, int(workers)) if exclude else set()
        model, figures = fit_property_head(self.loaded, molecules, names, hidden=int(hidden), layers=int(layers),
                                           epochs=int(epochs), seed=int(seed), workers=int(workers), exclude=excluded,
                                           cache=cache)
        meta = {**self.loaded.meta, "head_fit": {**figures, "properties": names, "hidden": hidden, "layers": layers,
                                                 "data": source or ("training sample" if smiles is None
                                                                    else "given molecules"),
                                                 "exclude": str(exclude or "")}}
        return self._with(model, meta), figures

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as a self-describing checkpoint that :func:`load` reads."""
        from molvae.checkpoint import save_checkpoint

        save_checkpoint(path, self.loaded.model, self.loaded.vocab, self.loaded.max_length, self.loaded.meta)
        return Path(path)

    # --- optimizing -----------------------------------------------------------------------------

    def campaign(self, objective: str | Sequence[Any], *, seeds: str | Sequence[str] | None = None,
                 budget: int = 1000, min_similarity: float = 0.0, method: str | Sequence[str] | None = None,
                 seed: int = 0, batch_size: int | None = None, surrogate: str | None = None,
                 filters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                 **options: Any):
        """:meth:`optimize` with every table: a :class:`molvae.optimize.Campaign` (``best``,
        ``candidates``, ``summary``, ``curves``, and ``leads`` with seeds). ``options`` go to
        :func:`molvae.optimize.run_campaign` (``top``, ``tracker``, ``surrogate_data``, ...)."""
        from molvae.objectives import filters_from_dict, parse_objectives
        from molvae.optimize import method_settings, optimize_config_from_dict, resolve_recipe, run_campaign

        objectives = parse_objectives(objective) if isinstance(objective, str) else tuple(objective)
        _number("budget", budget, 1, 10**7, integer=True)
        _number("min_similarity", min_similarity, 0, 1)
        table = {**(settings or {}), "budget": int(budget), "min_similarity": float(min_similarity),
                 "seed": int(seed)}
        for key, value in (("batch_size", batch_size), ("surrogate", surrogate)):
            if value is not None:
                table[key] = value
        methods = [method] if isinstance(method, str) else list(method or [])
        methods = [m.strip() for part in methods for m in part.split(",") if m.strip()]
        methods, shared = resolve_recipe(methods, table, from_leads=seeds is not None)
        options.setdefault("method_configs", method_settings(table, methods, from_leads=seeds is not None))
        return run_campaign(self.loaded, objectives, methods, optimize_config_from_dict(shared),
                            filters_from_dict(dict(filters or {})), _smiles_list(seeds) if seeds is not None else None,
                            **options)

    def optimize(self, objective: str | Sequence[Any], *, seeds: str | Sequence[str] | None = None,
                 budget: int = 1000, min_similarity: float = 0.0, method: str | Sequence[str] | None = None,
                 seed: int = 0, **options: Any) -> pd.DataFrame:
        """Search the latent space for molecules that score well on ``objective`` (e.g. ``"qed:max"``,
        ``"logp:window:2:3,sa:min"``, ``"mypkg.scorers:score:max"``): from random starts, or from each
        of ``seeds`` within Tanimoto ``min_similarity`` of it. Each method (``method``; default the
        population search, :data:`molvae.optimize.POPULATION_SEARCH`, or neighbourhood, gradient and
        random around seeds) gets ``budget`` oracle calls (per seed). Returns the best molecules ranked
        by true score (``rank``, ``smiles``, ``score``, each objective's value, the surrogate's
        prediction, ``similarity``, ...).

        >>> best = molvae.load("lead").optimize("qed:max", budget=20, method="random", batch_size=10)
        >>> len(best) <= 20 and best["score"].is_monotonic_decreasing
        True
        """
        return self.campaign(objective, seeds=seeds, budget=budget, min_similarity=min_similarity, method=method,
                             seed=seed, **options).best


def evaluate(smiles: str | Sequence[str], train: str | os.PathLike | Sequence[str] | None = None) -> dict[str, float]:
    """The standard metrics of a set of generated molecules: validity, uniqueness, novelty (with
    ``train``, a file or a list of SMILES), internal diversity and property means.

    >>> round(evaluate(["CCO", "CCO", "c1ccccc1O", "not a molecule"])["validity"], 2)
    0.75
    """
    from molvae.metrics import evaluate_samples
    from molvae.trainset import read_training_set

    training = read_training_set(str(train)) if isinstance(train, (str, os.PathLike)) else train
    return evaluate_samples(_smiles_list(smiles), training)


def score_objective(objective: str | Sequence[Any], smiles: str | Sequence[str | None],
                    filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Every molecule scored on an objective (an objective string as ``molvae optimize`` takes, e.g.
    ``"qed:max"`` or ``"pmo:celecoxib_rediscovery"``): one row per input in order with ``row``,
    ``input``, ``smiles``, the raw value of each objective, ``score``, and ``reason`` where a molecule
    cannot be scored (``score`` is then empty). What ``molvae evaluate FILE --objective`` writes.

    >>> table = score_objective("qed:max", ["CCO", "not a molecule"])
    >>> table["score"].notna().tolist(), table["reason"].tolist()
    ([True, False], ['', 'invalid SMILES (does not parse, or no atoms)'])
    """
    from molvae.objectives import filters_from_dict, parse_objectives, score_table

    objectives = parse_objectives(objective) if isinstance(objective, str) else tuple(objective)
    inputs = [s if isinstance(s, str) else None for s in _smiles_list(smiles)]  # an empty cell is no molecule
    return score_table(inputs, objectives, filters_from_dict(dict(filters or {})))


def train(data: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
          out: str | os.PathLike = "runs/molvae", *, resume: bool = False, track: bool = True,
          settings: Mapping[str, Any] | Sequence[str] | None = None, stop: threading.Event | None = None,
          **overrides: Any) -> tuple[Model | None, dict[str, Any]]:
    """Train a model on a SMILES file (default: the bundled MOSES sample) with a TOML recipe
    (``pipelines/recipes/*.toml``) and overrides, as ``section__key=value`` keywords
    (``train__epochs=5``) or ``settings`` (``{"train.epochs": 5}`` or ``["train.epochs=5"]``),
    writing checkpoints and reports to ``out`` and recording an MLflow run unless ``track`` is
    false. ``resume`` continues from ``out/last.pt``; setting ``stop`` saves and ends the run early.
    Returns the best model and the run's figures: data counts, training summary, the metrics of
    molecules sampled from the model, the files written and the MLflow run (under torchrun, ranks
    other than 0 get no model).

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> pd.read_csv(molvae.BUNDLED_DATA, nrows=64).to_csv(f"{out}/mine.csv", index=False)
    >>> model, figures = molvae.train(f"{out}/mine.csv", out=out, track=False, train__epochs=1,
    ...     model__embedding_dim=8, model__encoder_hidden=8, model__decoder_hidden=8, model__latent_dim=4,
    ...     model__exemplars=0, train__batch_size=16, sample__n=8, data__workers=1)
    >>> figures["training"]["epochs"], len(model.sample(3))
    (1, 3)
    """
    from molvae import BUNDLED_DATA
    from molvae.config import load_config, toml_value
    from molvae.experiment import train_run

    if isinstance(settings, Mapping):
        items = [f"{key}={toml_value(value)}" for key, value in settings.items()]
    else:
        items = list(settings or [])
    for key, value in overrides.items():
        section, sep, name = key.partition("__")
        if not sep:
            raise ValueError(f"override {key!r} must look like section__key (e.g. train__epochs=5)")
        items.append(f"{section}.{name}={toml_value(value)}")
    if not track:
        items.append("tracking.enabled=false")
    run_config = load_config(config, items)
    with _tracker(run_config, out) as tracker:
        summary = train_run(str(data or BUNDLED_DATA), run_config, out, tracker=tracker, resume=resume, stop=stop)
    result = summary.result
    figures = {"data": dict(summary.data_counts),
               "training": {"stop_reason": result.stop_reason, "epochs": result.epochs_completed,
                            "best_epoch": result.best_epoch + 1, "best_val_loss": result.best_val_loss,
                            "train_seconds": result.train_seconds,
                            "train_molecules_per_second": result.molecules_per_second},
               "samples": dict(summary.sample_metrics), "out": str(summary.out_dir),
               "files": sorted(p.name for p in summary.files.values()),
               "mlflow": {"run_id": tracker.run_id, "uri": run_config.tracking.resolved_uri(),
                          "model_uri": getattr(tracker, "model_uri", None),
                          "registered": run_config.tracking.register or None}}
    best = Path(summary.out_dir) / "model.pt"
    main_process = os.environ.get("RANK", "0") == "0"
    return (load(best, run_config.train.device) if main_process and best.exists() else None), figures


def _tracker(config, out):
    """The MLflow run a training records: none when tracking is off, and under torchrun only rank 0's."""
    from molvae.tracking import MlflowTracker, NullTracker

    is_main = os.environ.get("RANK", "0") == "0"
    return MlflowTracker(config.tracking, Path(out).name) if config.tracking.enabled and is_main else NullTracker()

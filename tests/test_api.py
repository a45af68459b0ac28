"""The Python API (molvae.api): the CLI's tables as DataFrames, every input row kept, bad arguments refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

import molvae
from molvae.errors import UserError

from .conftest import ASPIRIN, CAFFEINE, INVALID, MOLECULES_CSV


@pytest.fixture(scope="module")
def tiny(trained_run):
    return molvae.load(trained_run.out_dir / "model.pt", device="cpu")


@pytest.mark.parametrize(("call", "name"), [
    (lambda m: m.sample(0), "n"), (lambda m: m.sample(-5), "n"), (lambda m: m.sample(2.5), "n"),
    (lambda m: m.sample(4, temperature=-1), "temperature"), (lambda m: m.sample(4, spread=math.nan), "spread"),
    (lambda m: m.sample(4, spread=math.inf), "spread"), (lambda m: m.sample(4, seed=-1), "seed"),
    (lambda m: m.around(ASPIRIN, n=0), "n"), (lambda m: m.encode([ASPIRIN], refine=-1), "refine"),
    (lambda m: m.reconstruct([ASPIRIN], beam=0), "beam"), (lambda m: m.score([ASPIRIN], samples=0), "samples"),
    (lambda m: m.interpolate(ASPIRIN, CAFFEINE, steps=1), "steps"),
    (lambda m: m.optimize("qed:max", budget=0), "budget"),
    (lambda m: m.optimize("qed:max", min_similarity=1.5), "min_similarity"),
])
def test_bad_arguments_are_refused_naming_them(tiny, call, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        call(tiny)


def test_reading_keeps_every_row_in_order_with_reasons(tiny):
    inputs = [ASPIRIN, INVALID, CAFFEINE, ""]
    encoded = tiny.encode(inputs)
    assert encoded["input"].tolist() == inputs and encoded["row"].tolist() == [1, 2, 3, 4]
    read = encoded["reason"].isna()
    assert read.tolist() == [True, False, True, False]
    assert encoded.loc[read, "z0"].notna().all() and encoded.loc[~read, "z0"].isna().all()
    decoded = tiny.decode(encoded)  # the encode frame goes straight back in; unread rows stay empty
    assert len(decoded) == 4 and decoded["smiles"][1] is None and decoded["smiles"][3] is None
    for frame in (tiny.reconstruct(inputs, beam=1), tiny.score(inputs, samples=1)):
        assert frame["input"].tolist() == inputs and frame["reason"].notna().tolist() == [False, True, False, True]


def test_decode_checks_the_shape(tiny):
    with pytest.raises(ValueError, match="shape"):
        tiny.decode(np.zeros((2, tiny.latent_size + 1)))


def test_sample_writes_the_cli_columns_and_restores_the_spread(trained_run, tiny):
    spread = tiny.loaded.model.exemplars.spread
    table = tiny.sample(6, seed=3, spread=spread * 2)
    assert tiny.loaded.model.exemplars.spread == spread
    assert list(table.columns[:3]) == ["smiles", "valid", "novel"] and len(table) == 6
    assert table.attrs["metrics"]["n"] == 6.0
    again = tiny.sample(6, seed=3, spread=spread * 2)
    assert table["smiles"].tolist() == again["smiles"].tolist()  # a seed gives the same molecules


def test_optimize_from_leads_stays_near_them(tiny):
    campaign = tiny.campaign("qed:max", seeds=[ASPIRIN], budget=6, batch_size=4, min_similarity=0.3,
                             method="random", surrogate="none")
    assert campaign.leads["seed_input"].tolist() == [ASPIRIN]
    assert (campaign.candidates["similarity"] >= 0.3).all()
    assert set(campaign.best.columns) >= {"rank", "smiles", "score", "seed", "similarity"}


def test_evaluate_and_train_from_python(tmp_path):
    metrics = molvae.evaluate([ASPIRIN, ASPIRIN, CAFFEINE, INVALID], train=[ASPIRIN])
    assert metrics["validity"] == pytest.approx(0.75) and metrics["novelty"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="section__key"):
        molvae.train(MOLECULES_CSV, out=tmp_path, epochs=1)
    with pytest.raises(UserError, match="unknown key"):
        molvae.train(MOLECULES_CSV, out=tmp_path, train__epoch=1)


def test_the_shipped_model_samples_from_an_empty_directory(tmp_path):
    import subprocess
    import sys

    code = "import molvae; t = molvae.load().sample(10, seed=0); print(len(t), t['valid'].all(), 'smiles' in t)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["10", "True", "True"]
    assert list(tmp_path.iterdir()) == []  # nothing written where the user stands

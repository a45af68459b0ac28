"""molvae fit-head: a property head refitted on encoded molecules, the encoder and decoder frozen."""

from __future__ import annotations

import torch

from .conftest import MOLECULES_CSV
from molvae.checkpoint import load_model, read_checkpoint
from molvae.head import fit_head_weights


def test_fit_head_weights_learns_a_nonlinear_function_of_z():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(3000, 8, generator=generator)  # (N, Z)
    y = torch.stack([torch.sin(2 * z[:, 0]) + z[:, 1].pow(2), 5 + z[:, 2] * z[:, 3]], dim=1)  # (N, 2)
    fit = fit_head_weights(z, y, ["a", "b"], hidden=64, layers=2, epochs=60, batch_size=128,
                           validation_fraction=0.1, seed=0)
    assert fit.figures["val_r2_a"] > 0.9 and fit.figures["val_r2_b"] > 0.9
    assert len(fit.validation) == 300 and 1 <= fit.figures["best_epoch"] <= fit.figures["epochs"] <= 60
    held_out = fit.predict(z[fit.validation])  # (300, 2) in the labels' units
    assert held_out.shape == (300, 2) and abs(float(held_out[:, 1].mean()) - 5.0) < 0.3
    assert not any(p.requires_grad for p in fit.head.parameters())


def test_fit_head_weights_rejects_too_few_molecules():
    import pytest

    with pytest.raises(ValueError, match="at least"):
        fit_head_weights(torch.zeros(8, 4), torch.zeros(8, 1), ["a"])


def test_fit_head_cli_replaces_the_head_keeps_the_rest_and_leaves_out_excluded(trained_run, tmp_path, capsys):
    from molvae.cli import main

    source = trained_run.out_dir / "model.pt"
    exclude = tmp_path / "test_set.smi"
    smiles = [line.split(",")[1] for line in MOLECULES_CSV.read_text().splitlines()[1:]]
    exclude.write_text("\n".join(smiles[:3]) + "\n")
    out = tmp_path / "with_head.pt"
    args = ["fit-head", "--model", str(source), "--data", str(MOLECULES_CSV), "--properties", "heavy_atoms,logp",
            "--hidden", "16", "--layers", "2", "--epochs", "5", "--workers", "1", "--exclude", str(exclude),
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "heavy_atoms" in printed and "3 excluded" in printed

    before, after = load_model(source), load_model(out)
    assert after.model.config.property_names == ["heavy_atoms", "logp"] and after.model.config.property_layers == 2
    fit = after.meta["head_fit"]
    assert fit["dropped_excluded"] == 3 and fit["molecules"] == len(smiles) - 3
    assert fit["train_molecules"] + fit["validation_molecules"] == fit["molecules"]
    kept = {k: v for k, v in before.model.state_dict().items() if not k.startswith("property_")}
    new = after.model.state_dict()
    assert all(torch.equal(v, new[k]) for k, v in kept.items())  # encoder, decoder, priors untouched
    with torch.no_grad():
        mu, _ = after.model.encode(*_tokens(after, smiles[:4]))
        predicted = after.model.predict_properties(mu)  # (4, 2) in the labels' units
    assert predicted.shape == (4, 2) and float(predicted[:, 0].mean()) > 5  # heavy atoms, not normalized values


def _tokens(loaded, smiles):
    from molvae.data import tokenize
    from molvae.sample import encode_smiles

    encoded = encode_smiles(loaded, smiles)
    data = tokenize(encoded.selfies, encoded.smiles, loaded.vocab)
    return data.batch(torch.arange(len(data)), loaded.device)


def test_fit_head_cache_is_reused_for_the_same_model_and_molecules_only(trained_run, tmp_path, monkeypatch):
    import molvae.head
    from molvae.cli import main

    cache = tmp_path / "cache.pt"

    def fit_head(properties: str, layers: str, out: str) -> int:
        return main(["fit-head", "--model", str(trained_run.out_dir / "model.pt"), "--data", str(MOLECULES_CSV),
                     "--properties", properties, "--hidden", "8", "--layers", layers, "--epochs", "2",
                     "--workers", "1", "--cache", str(cache), "--out", str(tmp_path / out)])

    assert fit_head("logp", "1", "a.pt") == 0 and cache.is_file()
    calls = []
    encode_and_label = molvae.head.encode_and_label
    monkeypatch.setattr(molvae.head, "encode_and_label", lambda *a, **k: calls.append(1) or encode_and_label(*a, **k))
    assert fit_head("logp", "3", "b.pt") == 0  # another head on the same encodings
    assert calls == [] and load_model(tmp_path / "b.pt").model.config.property_layers == 3
    assert fit_head("qed", "1", "c.pt") == 0  # other properties: computed again
    assert calls == [1]


def test_a_checkpoint_from_before_deeper_heads_loads_with_its_one_layer_head(trained_run, tmp_path):
    """Checkpoints written before ``property_layers`` existed hold a one-hidden-layer head."""
    from molvae.cli import main

    out = tmp_path / "one_layer.pt"
    assert main(["fit-head", "--model", str(trained_run.out_dir / "model.pt"), "--data", str(MOLECULES_CSV),
                 "--properties", "qed", "--hidden", "8", "--layers", "1", "--epochs", "2", "--workers", "1",
                 "--out", str(out)]) == 0
    payload = read_checkpoint(out)
    del payload["model_config"]["property_layers"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert old.model.config.property_layers == 1
    assert old.model.predict_properties(torch.zeros(3, old.model.config.latent_dim)).shape == (3, 1)


def test_fit_head_cli_bad_input_is_a_clear_error(trained_run, tmp_path, capsys):
    from molvae.cli import main

    model = str(trained_run.out_dir / "model.pt")
    out = str(tmp_path / "x.pt")
    assert main(["fit-head", "--model", model, "--data", str(MOLECULES_CSV), "--properties", "qed,colour",
                 "--out", out]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["fit-head", "--model", model, "--data", str(MOLECULES_CSV), "--layers", "0", "--out", out]) == 2
    assert "--layers" in capsys.readouterr().err
    assert main(["fit-head", "--model", model, "--data", str(tmp_path / "missing.csv"), "--out", out]) == 2

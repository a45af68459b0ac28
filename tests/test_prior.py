"""Latent-space terms: learned priors (flow, mixture), the MMD term, the KL controller, per-epoch
generation metrics, and checkpoints written before learned priors existed."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from molvae.checkpoint import PRETRAINED, CheckpointError, load_model, read_checkpoint, save_checkpoint
from molvae.model import FlowPrior, MixturePrior, ModelConfig, MolVAE, gaussian_kl, gaussian_log_prob, mmd_to_samples
from molvae.sample import encode_smiles, sample_prior
from molvae.training import TrainConfig, control_kl_weight, fit

from .test_training import SMALL, fixture_data


def test_flow_prior_is_invertible_and_a_density():
    torch.manual_seed(0)
    flow = FlowPrior(6, layers=4, hidden=16)
    for layer in flow.layers:  # leave the identity start: random couplings
        torch.nn.init.normal_(layer.net[-1].weight, std=0.3)
    u = torch.randn(50, 6)
    z = flow.to_latent(u)
    back, _ = flow.to_base(z)
    assert torch.allclose(back, u, atol=1e-5)
    # change of variables checked against the Jacobian determinant computed by autograd
    point = z[:1].detach()
    jacobian = torch.autograd.functional.jacobian(lambda x: flow.to_base(x)[0], point).reshape(6, 6)
    expected = gaussian_log_prob(flow.to_base(point)[0]) + torch.linalg.slogdet(jacobian).logabsdet
    assert torch.allclose(flow.log_prob(point), expected, atol=1e-4)
    assert flow.sample(7).shape == (7, 6)


def test_priors_start_as_or_reduce_to_the_standard_normal():
    z = torch.randn(20, 4)
    assert torch.allclose(FlowPrior(4, layers=2, hidden=8).log_prob(z), gaussian_log_prob(z), atol=1e-6)
    mixture = MixturePrior(4, components=1)
    with torch.no_grad():
        mixture.means.zero_()
    assert torch.allclose(mixture.log_prob(z), gaussian_log_prob(z), atol=1e-5)
    assert mixture.sample(9).shape == (9, 4)


@pytest.mark.parametrize("prior", ["gaussian", "flow", "mixture"])
def test_kl_estimate_and_gradients(prior):
    """The KL term has the right shape, is unbiased for N(0, I) (the learned priors start there or
    near it), and sends finite gradients into the encoder and the prior."""
    torch.manual_seed(0)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=10, latent_dim=4, prior=prior, prior_layers=2,
                                       prior_hidden=8, prior_components=1))
    mu, logvar = torch.randn(3, 4) * 0.5, torch.randn(3, 4) * 0.3
    draws = mu + torch.randn(20000, 3, 4) * torch.exp(0.5 * logvar)  # (S, B, Z)
    analytic = gaussian_kl(mu, logvar).sum(dim=1)  # (B,)
    if prior == "gaussian":
        assert torch.equal(model.kl(mu, logvar, draws[0]), analytic)  # exact, whatever z
    else:
        if prior == "mixture":
            with torch.no_grad():
                model.prior.means.zero_()
        kl = model.kl(mu, logvar, draws)  # (S, B) one-sample estimates
        assert kl.shape == (20000, 3)
        assert torch.allclose(kl.mean(dim=0), analytic, atol=0.05)
    mu.requires_grad_(True)
    loss = model.kl(mu, logvar, mu + torch.randn(3, 4)).mean()
    loss.backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0
    if model.prior is not None:
        grads = [p.grad for p in model.prior.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_gradcheck_of_the_new_terms():
    torch.manual_seed(0)
    a = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: mmd_to_samples(x, b), (a,))
    flow = FlowPrior(3, layers=2, hidden=8).double()
    torch.nn.init.normal_(flow.layers[0].net[-1].weight, std=0.3)
    assert torch.autograd.gradcheck(lambda x: flow.log_prob(x), (a,))
    mixture = MixturePrior(3, components=4).double()
    assert torch.autograd.gradcheck(lambda x: mixture.log_prob(x), (a,))


def test_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    generator = torch.Generator().manual_seed(0)
    same = mmd_to_samples(torch.randn(256, 8, generator=generator), torch.randn(256, 8, generator=generator))
    shifted = mmd_to_samples(torch.randn(256, 8, generator=generator) + 2.0, torch.randn(256, 8, generator=generator))
    assert abs(same.item()) < 0.02 < shifted.item()


def test_mmd_moves_the_aggregate_posterior_toward_the_prior():
    """Latent points on a thin, shifted set are pulled by the MMD term toward N(0, I)."""
    torch.manual_seed(0)
    points = (torch.randn(128, 8) * 0.1 + 1.5).requires_grad_(True)
    optimizer = torch.optim.Adam([points], lr=0.05)
    before = mmd_to_samples(points.detach(), torch.randn(128, 8)).item()
    for _ in range(200):
        loss = mmd_to_samples(points, torch.randn(128, 8))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = mmd_to_samples(points.detach(), torch.randn(512, 8)[:128]).item()
    assert after < 0.2 * before
    assert points.detach().mean().abs() < 0.3 and 0.5 < points.detach().std() < 1.5


def test_a_learned_prior_moves_toward_the_aggregate_posterior():
    """Maximizing log p(z) on encodings that sit away from the origin moves the flow's samples to them."""
    torch.manual_seed(0)
    encodings = torch.randn(512, 4) * 0.3 + torch.tensor([2.0, -1.0, 0.0, 1.0])
    flow = FlowPrior(4, layers=4, hidden=32)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    before = mmd_to_samples(flow.sample(256).detach(), encodings[:256]).item()
    for _ in range(300):
        loss = -flow.log_prob(encodings).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = mmd_to_samples(flow.sample(256), encodings[256:]).item()
    assert after < 0.1 * before


def test_kl_controller_holds_its_target():
    config = TrainConfig(kl_target=10.0, kl_weight=1.0)
    assert control_kl_weight(0.5, 20.0, config) > 0.5 > control_kl_weight(0.5, 5.0, config)
    assert control_kl_weight(1e-4, 0.0, config) == pytest.approx(1e-4)  # floor
    # a toy system whose KL falls as the weight rises settles near the target
    beta = 1e-3
    for _ in range(3000):
        kl = 2.0 / math.sqrt(beta)
        beta = control_kl_weight(beta, kl, config)
    assert 2.0 / math.sqrt(beta) == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("prior", ["flow", "mixture"])
def test_tiny_run_with_a_learned_prior_trains_saves_and_samples(tmp_path, prior):
    vocab, data, max_length = fixture_data(tmp_path, 32)
    torch.manual_seed(0)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=len(vocab), prior=prior, prior_layers=2, prior_hidden=16,
                                       prior_components=4))
    initial = [p.detach().clone() for p in model.prior.parameters()]
    config = TrainConfig(epochs=2, batch_size=8, warmup_steps=2, kl_target=5.0, kl_weight=1.0, mmd_weight=1.0,
                         eval_samples=20, eval_reconstruct=4, device="cpu")
    result = fit(model, vocab, data, data.subset(torch.arange(4)), config, max_length=max_length)
    last = result.history[-1]
    assert all(math.isfinite(last[key]) for key in ("train_loss", "train_mmd", "val_kl", "sample_sa", "sample_qed"))
    assert 0 < last["train_kl_weight"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(initial, model.prior.parameters()))  # the prior learned
    path = save_checkpoint(tmp_path / "m.pt", model, vocab, max_length)
    loaded = load_model(path)
    assert loaded.model.config.prior == prior
    assert len(sample_prior(loaded, 5, progress=False).smiles) == 5


def test_epoch_metrics_include_fcd_against_a_reference(tmp_path):
    from molvae.moses import moses_test_fcd_reference

    vocab, data, max_length = fixture_data(tmp_path, 32)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=len(vocab)))
    config = TrainConfig(epochs=1, batch_size=8, warmup_steps=2, eval_samples=30, eval_reconstruct=4, device="cpu",
                         select_by="fcd")
    result = fit(model, vocab, data, data.subset(torch.arange(4)), config, max_length=max_length,
                 fcd_reference=moses_test_fcd_reference())
    fcd = result.history[-1]["sample_fcd"]
    assert math.isfinite(fcd) and fcd > 0 and result.best_epoch == 0
    with pytest.raises(ValueError, match="select_by"):
        fit(model, vocab, data, data, dataclasses.replace(config, select_by="fcd"), max_length=max_length)


def test_checkpoints_from_before_learned_priors_still_load():
    """The shipped model of an earlier release has no prior fields: it loads with the N(0, I) prior."""
    payload = read_checkpoint(PRETRAINED)
    assert payload["format_version"] == 1
    loaded = load_model(PRETRAINED)
    if "prior" not in payload["model_config"]:
        assert loaded.model.config.prior == "gaussian" and loaded.model.prior is None
    assert len(sample_prior(loaded, 3, progress=False).smiles) == 3


def test_a_checkpoint_with_an_unknown_prior_fails_clearly(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 8)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=len(vocab)))
    path = save_checkpoint(tmp_path / "m.pt", model, vocab, max_length)
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["prior"] = "hyperbolic"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="prior"):
        load_model(path)


def test_unknown_prior_in_config_is_refused():
    with pytest.raises(ValueError, match="model.prior"):
        MolVAE(ModelConfig(vocab_size=10, prior="hyperbolic"))


def test_fit_prior_moves_the_prior_onto_the_encodings(trained_run, tmp_path, capsys):
    """molvae fit-prior: the held-out posterior draws become likelier under the fitted prior, and the
    written checkpoint samples from it."""
    from molvae.cli import main
    from molvae.prior import fit_prior

    loaded = load_model(trained_run.out_dir / "model.pt")
    model, figures = fit_prior(loaded, loaded.training_sample, steps=150, batch_size=256)
    assert model.config.prior == "flow" and figures["held_out_log_prob_after"] > figures["held_out_log_prob_before"]
    for name, value in loaded.model.state_dict().items():  # encoder and decoder untouched
        if not name.startswith("prior."):
            assert torch.equal(model.state_dict()[name], value), name
    out = tmp_path / "fitted.pt"
    assert main(["fit-prior", "--model", str(trained_run.out_dir / "model.pt"), "--steps", "50", "--out", str(out)]) == 0
    fitted = load_model(out)
    assert fitted.model.config.prior == "flow" and "prior_fit" in fitted.meta
    assert len(sample_prior(fitted, 4, progress=False).smiles) == 4


def test_fit_prior_gives_a_gaussian_model_a_flow(tmp_path):
    from molvae.checkpoint import LoadedModel
    from molvae.prior import fit_prior

    vocab, data, max_length = fixture_data(tmp_path, 32)
    torch.manual_seed(0)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=len(vocab), prior="gaussian"))
    with torch.no_grad():  # encodings away from the origin, as after training with a light KL weight
        model.to_mu.bias.fill_(1.5)
        model.to_logvar.bias.fill_(-3.0)
    loaded = LoadedModel(model.eval(), vocab, max_length, {"config": {"data": {"isomeric": True}}})
    fitted, figures = fit_prior(loaded, data.smiles, steps=200, batch_size=128, layers=2, hidden=32)
    assert loaded.model.prior is None and fitted.config.prior == "flow" and fitted.config.prior_layers == 2
    assert figures["held_out_log_prob_after"] > figures["held_out_log_prob_before"] + 10


def test_exemplar_prior_samples_around_the_posteriors_it_holds():
    from molvae.model import ExemplarPrior

    prior = ExemplarPrior(dim=3, spread=1.0)
    assert not prior.fitted
    with pytest.raises(RuntimeError, match="fitted"):
        prior.sample(2)
    means = torch.tensor([[5.0, 0.0, 0.0], [-5.0, 0.0, 0.0]])
    prior.fit(means, torch.full((2, 3), math.log(0.01)))  # sigma 0.1
    assert prior.fitted and prior.means.dtype == torch.float16
    z = prior.sample(400, torch.Generator().manual_seed(0))  # (400, 3)
    nearest = torch.cdist(z, means).min(dim=1).values
    assert z.shape == (400, 3) and nearest.max() < 0.6  # every draw sits at one of the two posteriors
    assert 100 < int((z[:, 0] > 0).sum()) < 300  # both are used
    pairs = prior.sample(2, torch.Generator().manual_seed(1))  # without replacement: one draw from each
    assert int((pairs[:, 0] > 0).sum()) == 1
    prior.spread = 3.0
    wider = prior.sample(400, torch.Generator().manual_seed(0))
    assert torch.cdist(wider, means).min(dim=1).values.mean() > 2 * nearest.mean()


def test_a_model_samples_from_its_exemplars_once_fitted_and_keeps_them_in_its_checkpoint(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 8)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=len(vocab), exemplars=5, exemplar_spread=0.5)).eval()
    generator = torch.Generator().manual_seed(0)
    assert model.sample_latent(4, generator).abs().max() < 10  # unfitted: the trained prior
    path = save_checkpoint(tmp_path / "unfitted.pt", model, vocab, max_length)
    assert not load_model(path).model.exemplars.fitted  # a checkpoint written while training
    from molvae.training import fit_exemplars

    assert fit_exemplars(model, data) == 5
    z = model.sample_latent(50, generator)
    held = model.exemplars.means.float()
    spread = model.exemplars.sigmas.float().max() * 0.5
    assert (torch.cdist(z, held).min(dim=1).values < 8 * spread * math.sqrt(z.size(1))).all()
    loaded = load_model(save_checkpoint(tmp_path / "fitted.pt", model, vocab, max_length)).model
    assert loaded.exemplars.means.shape == (5, SMALL.latent_dim) and loaded.exemplars.spread == 0.5
    assert torch.equal(loaded.exemplars.means, model.exemplars.means)


def test_checkpoints_without_exemplars_load_and_sample_from_their_prior(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 8)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=len(vocab)))
    path = save_checkpoint(tmp_path / "m.pt", model, vocab, max_length)
    payload = torch.load(path, weights_only=True)  # as written before exemplar priors existed
    for key in ("exemplars", "exemplar_spread"):
        payload["model_config"].pop(key)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("exemplars.")}
    torch.save(payload, path)
    loaded = load_model(path)
    assert loaded.model.exemplars is None and loaded.model.config.exemplars == 0
    assert len(sample_prior(loaded, 3, progress=False).smiles) == 3


def test_training_fits_exemplars_and_epochs_sample_from_posteriors(trained_run):
    """`molvae train` ends by storing the posteriors of its training molecules (all of them, when
    there are fewer than model.exemplars); each epoch's samples were drawn the same way."""
    loaded = load_model(trained_run.out_dir / "model.pt")
    train_molecules = json.loads((trained_run.out_dir / "data_report.json").read_text())["train_molecules"]
    assert loaded.model.exemplars.fitted and loaded.model.exemplars.means.size(0) == train_molecules
    encoded = encode_smiles(loaded, loaded.training_sample)  # the same molecules, encoded again
    held = loaded.model.exemplars.means.float()
    assert torch.cdist(encoded.mu, held).min(dim=1).values.max() < 0.05
    history = trained_run.result.history
    assert all(0 <= row["sample_validity"] <= 1 and math.isfinite(row["sample_sa"]) for row in history)


def test_fine_tuning_refits_the_exemplars_to_its_own_molecules(trained_run, tmp_path):
    from molvae.experiment import train_run

    from .conftest import MOLECULES_CSV, tiny_config

    start = load_model(trained_run.out_dir / "model.pt")
    config = tiny_config(tmp_path, "train.epochs=1", f'train.init="{trained_run.out_dir / "model.pt"}"')
    summary = train_run(MOLECULES_CSV, config, tmp_path / "tuned")
    tuned = load_model(tmp_path / "tuned" / "model.pt")
    assert tuned.model.exemplars.fitted
    assert not torch.equal(tuned.model.exemplars.means, start.model.exemplars.means)  # the new encoder's posteriors
    assert summary.result.epochs_completed == 1
    assert len(tuned.training_index) >= len(start.training_index)  # what it was trained on before stays known


def test_fit_prior_exemplars_and_sample_spread_from_the_cli(trained_run, tmp_path, capsys):
    from molvae.cli import main

    out = tmp_path / "exemplars.pt"
    assert main(["fit-prior", "--model", str(trained_run.out_dir / "model.pt"), "--count", "10", "--spread", "2",
                 "--out", str(out)]) == 0
    fitted = load_model(out)
    assert fitted.model.exemplars.means.size(0) == 10 and fitted.model.exemplars.spread == 2.0
    assert fitted.meta["prior_fit"]["kind"] == "exemplars"
    assert main(["sample", "--model", str(out), "-n", "6", "--spread", "0.5", "--out", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").exists()
    assert main(["sample", "--model", str(out), "-n", "6", "--spread", "-1", "--out", str(tmp_path / "t.csv")]) == 2
    assert "argument --spread: must be a finite number > 0" in capsys.readouterr().err
    assert main(["fit-prior", "--model", str(trained_run.out_dir / "model.pt"), "--count", "0",
                 "--out", str(out)]) == 2

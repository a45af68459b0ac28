"""Model and training loop: the model learns, checkpoints round-trip, resume is exact, failures are safe."""

from __future__ import annotations

import dataclasses
import threading

import pandas as pd
import pytest
import torch

from molvae.checkpoint import CheckpointError, LoadedModel, load_model, read_checkpoint, save_checkpoint
from molvae.data import DataConfig, prepare, tokenize
from molvae.model import ModelConfig, MolVAE
from molvae.sample import decode_latents, encode_smiles
from molvae.tracking import NullTracker
from molvae.training import TrainConfig, TrainingDiverged, fit
from molvae.vocab import Vocabulary

from .conftest import MOLECULES_CSV, tiny_config

SMALL = ModelConfig(embedding_dim=32, encoder_hidden=64, decoder_hidden=128, decoder_layers=1, latent_dim=16,
                    dropout=0.0)


def fixture_data(tmp_path, n: int = 32):
    prepared = prepare(MOLECULES_CSV, DataConfig(cache_dir=str(tmp_path / "cache"), workers=1))
    kept = prepared.kept.head(n)
    vocab = Vocabulary.build(prepared.kept["selfies"])
    data = tokenize(kept["selfies"].tolist(), kept["smiles"].tolist(), vocab)
    return vocab, data, int(data.lengths.max()) + 8


def new_model(vocab, config=SMALL, seed=0) -> MolVAE:
    torch.manual_seed(seed)
    return MolVAE(dataclasses.replace(config, vocab_size=len(vocab)))


def test_overfits_32_molecules(tmp_path):
    """The model must be able to learn: >= 90% exact greedy reconstruction of 32 training molecules."""
    vocab, data, max_length = fixture_data(tmp_path, 32)
    model = new_model(vocab)
    config = TrainConfig(epochs=120, batch_size=8, learning_rate=3e-3, warmup_steps=10, kl_schedule="constant",
                         kl_weight=1e-3, free_bits=0.0, patience=1000, eval_samples=0, eval_reconstruct=0,
                         device="cpu")
    fit(model, vocab, data, data.subset(torch.arange(4)), config, max_length=max_length)
    loaded = LoadedModel(model.eval(), vocab, max_length, {})
    encoded = encode_smiles(loaded, data.smiles)
    decoded = decode_latents(loaded, encoded.mu, temperature=0.0)
    exact = sum(d == s for d, s in zip(decoded, data.smiles)) / len(data)
    assert exact >= 0.9, f"exact reconstruction {exact:.2f}"


def test_inputs_are_standardized_as_the_training_data_was():
    """A model trained without stereochemistry reads a chiral input with its stereo dropped, instead
    of rejecting [C@@H] as a symbol outside its vocabulary."""
    vocab = Vocabulary(["[C]", "[N]", "[O]", "[Branch1]", "[Ring1]"])
    stereo = "C[C@H](N)O"
    flat = LoadedModel(new_model(vocab).eval(), vocab, 20, {"config": {"data": {"isomeric": False}}})
    encoded = encode_smiles(flat, [stereo])
    assert encoded.smiles == ["CC(N)O"] and not encoded.rejected
    keeping = LoadedModel(flat.model, vocab, 20, {"config": {"data": {"isomeric": True}}})
    assert [reason for _, reason, _ in encode_smiles(keeping, [stereo]).rejected] == ["unknown_token"]
    assert LoadedModel(flat.model, vocab, 20, {}).standardize_options.isomeric  # old checkpoints: the default


def run_fit(vocab, data, max_length, config, **kwargs):
    model = new_model(vocab)
    saved = {}
    result = fit(model, vocab, data, data.subset(torch.arange(8)), config, max_length=max_length,
                 save=lambda kind, state: saved.__setitem__(kind, state), **kwargs)
    return model, result, saved


class StopAfterFirstEpoch(NullTracker):
    """A tracker that asks training to stop as soon as the first epoch's metrics arrive."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def log_metrics(self, metrics, step=None):
        self.stop.set()


def test_a_run_stopped_by_hand_says_how_to_finish_it(tmp_path, caplog):
    from molvae.experiment import train_run

    class StopAtFirstEpochEnd(NullTracker):
        def log_metrics(self, metrics, step=None):
            if "val_loss" in metrics:
                stop.set()

    stop = threading.Event()
    caplog.set_level("WARNING", logger="molvae")
    summary = train_run(MOLECULES_CSV, tiny_config(tmp_path, "train.epochs=3"), tmp_path / "run",
                        tracker=StopAtFirstEpochEnd(), stop=stop)
    assert summary.result.stop_reason == "interrupted" and (tmp_path / "run" / "model.pt").exists()
    assert not load_model(tmp_path / "run" / "model.pt").model.exemplars.fitted  # a finished run fits them
    assert "--resume" in caplog.text and "molvae fit-prior --model" in caplog.text


def test_progress_is_logged_when_there_is_no_terminal(tmp_path, caplog, monkeypatch):
    """A run logging to a file (no terminal for the progress bar) reports its progress as log lines."""
    from molvae import training as train_module

    vocab, data, max_length = fixture_data(tmp_path, 16)
    monkeypatch.setattr(train_module._ProgressLog, "every", 0.0)
    caplog.set_level("INFO", logger="molvae")
    config = TrainConfig(epochs=1, batch_size=4, eval_samples=0, eval_reconstruct=0, device="cpu")
    fit(new_model(vocab), vocab, data, data.subset(torch.arange(4)), config, max_length=max_length)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1: batch")]
    assert [line.split(" (")[0] for line in lines] == [f"epoch 1/1: batch {b}/4" for b in (1, 2, 3, 4)]
    assert "molecules/s" in lines[-1] and lines[-1].endswith("0 min left in this epoch")


def test_interrupt_then_resume_equals_uninterrupted(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 48)
    config = TrainConfig(epochs=3, batch_size=8, warmup_steps=2, eval_samples=4, eval_reconstruct=4, device="cpu",
                         word_dropout=0.1, kl_schedule="cyclical", kl_cycles=2)
    reference, ref_result, _ = run_fit(vocab, data, max_length, config)
    assert ref_result.stop_reason == "completed" and ref_result.epochs_completed == 3

    stop = threading.Event()
    first, first_result, saved = run_fit(vocab, data, max_length, config, stop=stop,
                                         tracker=StopAfterFirstEpoch(stop))
    assert first_result.stop_reason == "interrupted"
    state = saved["last"]
    assert state["epoch"] == 1 and state["batch"] == 1  # stopped inside the second epoch
    path = save_checkpoint(tmp_path / "last.pt", first, vocab, max_length, train_state=state)

    payload = read_checkpoint(path)  # what --resume reads: weights_only=True
    resumed = new_model(vocab, seed=123)  # different init: everything must come from the file
    resumed.load_state_dict(payload["state_dict"])
    result = fit(resumed, vocab, data, data.subset(torch.arange(8)), config, max_length=max_length,
                 resume_state=payload["train_state"])
    assert result.stop_reason == "completed" and result.epochs_completed == 3
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["val_loss"] for h in result.history] == pytest.approx([h["val_loss"] for h in ref_result.history])


def test_checkpoint_round_trip_and_weights_only(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 8)
    model = new_model(vocab).eval()
    path = save_checkpoint(tmp_path / "model.pt", model, vocab, max_length, meta={"note": "x"})
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 and raw["vocab"]["symbols"] == vocab.symbols
    loaded = load_model(path)
    tokens, lengths = data.batch(torch.arange(len(data)))
    with torch.no_grad():
        assert torch.equal(model.encode(tokens, lengths)[0], loaded.model.encode(tokens, lengths)[0])
    assert loaded.vocab == vocab and loaded.max_length == max_length and loaded.meta == {"note": "x"}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_bad_checkpoints_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable molvae checkpoint"):
        load_model(garbage)
    torch.save({"something": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a molvae checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")


def test_nan_loss_stops_and_keeps_the_good_checkpoint(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 16)
    model = new_model(vocab)
    good = save_checkpoint(tmp_path / "model.pt", model, vocab, max_length)
    before = good.read_bytes()
    with torch.no_grad():
        model.output.bias.fill_(float("nan"))
    config = TrainConfig(epochs=2, batch_size=8, eval_samples=0, eval_reconstruct=0, device="cpu")
    saves = []
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1, step 0"):
        fit(model, vocab, data, data.subset(torch.arange(4)), config, max_length=max_length,
            save=lambda kind, state: saves.append(kind))
    assert saves == [] and good.read_bytes() == before


def test_epoch_metrics_show_collapse_guards(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 32)
    _, result, saved = run_fit(vocab, data, max_length,
                               TrainConfig(epochs=2, batch_size=8, eval_samples=10, eval_reconstruct=4, device="cpu"))
    history = pd.DataFrame(result.history)
    for column in ("train_loss", "val_loss", "val_kl", "val_token_accuracy", "active_units", "kl_dim_min",
                   "kl_dim_median", "kl_dim_max", "val_exact_reconstruction", "sample_validity",
                   "sample_uniqueness"):
        assert column in history and history[column].notna().all(), column
    assert set(saved) == {"last", "best"}
    assert result.molecules_per_second > 0


def test_fine_tuning_starts_from_a_checkpoint_and_learns_new_symbols(trained_run, tmp_path):
    """train.init keeps the checkpoint's architecture, vocabulary and weights; a symbol of the data
    the model lacks joins the vocabulary (its molecule is trained on), or with train.new_symbols =
    false the molecule is rejected."""
    from molvae.chem import StandardizeOptions, clean_smiles
    from molvae.experiment import train_run

    from .conftest import tiny_config

    start = load_model(trained_run.out_dir / "model.pt")
    candidates = ["CC[Se]CC", "BrC(Br)(Br)Br", "C1=CC=CC=CC=C1", "O=[N+]([O-])c1ccccc1", "CC(C)(C)[Si](C)(C)C"]
    unreadable, selfies, new = next((s, sel, unknown) for s in candidates
                                    if (sel := clean_smiles(s, StandardizeOptions(), 100)[1])
                                    and (unknown := start.vocab.unknown_symbols(sel)))
    table = pd.read_csv(MOLECULES_CSV)
    table = pd.concat([table, pd.DataFrame({"SMILES": [unreadable]})], ignore_index=True)
    data = tmp_path / "data.csv"
    table.to_csv(data, index=False)
    init = f'train.init="{trained_run.out_dir / "model.pt"}"'

    summary = train_run(data, tiny_config(tmp_path, init, "train.epochs=1", "model.latent_dim=4"), tmp_path / "tuned")
    tuned = load_model(tmp_path / "tuned" / "model.pt")
    assert tuned.model.config.latent_dim == start.model.config.latent_dim  # [model] came from the checkpoint
    assert tuned.vocab.symbols == start.vocab.symbols + sorted(set(new))  # every known symbol keeps its id
    assert tuned.model.config.vocab_size == len(tuned.vocab) == tuned.model.output.out_features
    assert summary.data_counts["rows_rejected"] == 0 and not tuned.vocab.unknown_symbols(selfies)

    rejecting = tiny_config(tmp_path, init, "train.epochs=1", "train.new_symbols=false")
    summary = train_run(data, rejecting, tmp_path / "kept_vocabulary")
    assert load_model(tmp_path / "kept_vocabulary" / "model.pt").vocab.symbols == start.vocab.symbols
    rejected = pd.read_csv(tmp_path / "kept_vocabulary" / "rejected.csv")
    assert rejected["reason"].tolist() == ["unknown_token"] and summary.data_counts["rejected_unknown_token"] == 1


def test_a_grown_vocabulary_keeps_every_prediction():
    """Known weights and the logits of known symbols are unchanged; a new symbol's logit starts at
    the lowest known bias (zero output weight) and its embedding at the known symbols' mean."""
    torch.manual_seed(0)
    model = MolVAE(dataclasses.replace(SMALL, vocab_size=12)).eval()
    z, inputs = torch.randn(3, SMALL.latent_dim), torch.randint(4, 12, (3, 7))
    before = model.decode_logits(z, inputs)
    embedding = model.embedding.weight.clone()
    model.grow_vocabulary(15)
    after = model.decode_logits(z, inputs)
    assert after.shape == (3, 7, 15) and model.config.vocab_size == 15
    assert torch.equal(model.embedding.weight[:12], embedding) and torch.equal(after[..., :12], before)
    assert torch.allclose(after[..., 12:], model.output.bias[4:12].min().expand(3, 7, 3))
    assert torch.allclose(model.embedding.weight[12:], embedding[4:].mean(dim=0).expand(3, -1))
    with pytest.raises(ValueError, match="shrink"):
        model.grow_vocabulary(10)


def test_fine_tuning_adds_a_property_head_to_a_model_without_one(trained_run, tmp_path):
    """model.property_names on a headless starting model: a new head, the encoder and decoder kept."""
    from molvae.chem import PROPERTIES, to_mol
    from molvae.experiment import train_run

    from .conftest import tiny_config

    start = load_model(trained_run.out_dir / "model.pt")
    assert not start.model.config.property_names
    init = f'train.init="{trained_run.out_dir / "model.pt"}"'
    config = tiny_config(tmp_path, init, "train.epochs=1", 'model.property_names=["qed", "logp"]')
    train_run(MOLECULES_CSV, config, tmp_path / "tuned")
    tuned = load_model(tmp_path / "tuned" / "model.pt")
    assert tuned.model.config.property_names == ["qed", "logp"]
    assert tuned.vocab.symbols == start.vocab.symbols
    qed = [PROPERTIES["qed"](to_mol(s)) for s in pd.read_csv(MOLECULES_CSV)["SMILES"]]
    assert 0.9 * min(qed) < float(tuned.model.property_mean[0]) < 1.1 * max(qed)  # label statistics of this data
    z = torch.zeros(3, tuned.model.config.latent_dim)
    assert tuned.model.predict_properties(z).shape == (3, 2)

    # a model that has a head keeps it: asking for other properties is a clear error
    again = tiny_config(tmp_path, f'train.init="{tmp_path / "tuned" / "model.pt"}"', "train.epochs=1",
                        'model.property_names=["sa"]')
    with pytest.raises(CheckpointError, match="keeps that model's property head"):
        train_run(MOLECULES_CSV, again, tmp_path / "tuned_again")


def test_the_kl_controller_starts_from_the_weight_it_is_given(tmp_path):
    vocab, data, max_length = fixture_data(tmp_path, 16)
    weights = {}
    for start in (1e-3, 0.5):
        config = TrainConfig(epochs=1, batch_size=8, kl_target=1e6, kl_weight=1.0, kl_start_weight=start,
                             eval_samples=0, eval_reconstruct=0, device="cpu")
        _, result, _ = run_fit(vocab, data, max_length, config)
        weights[start] = result.history[0]["train_kl_weight"]
    # a KL far below the target only lowers the weight, by at most a factor exp(gain) a step
    assert weights[1e-3] <= 1e-3 and weights[0.5] > 0.1

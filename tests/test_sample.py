"""Canonical sampling: only decodes that are canonical SELFIES strings are kept, more latent points
are drawn until there are enough, and the draws are bounded and accounted for."""

from __future__ import annotations

import torch

import molvae.sample as sample_module
from molvae.checkpoint import load_model
from molvae.chem import canonical_smiles, decode_selfies_checked, encode_selfies
from molvae.sample import draw_samples, sample_prior
from molvae.vocab import EOS_ID

# as training strings are made: the SELFIES of a canonical SMILES
CANONICAL = [encode_selfies(canonical_smiles(s)) for s in ("CCO", "c1ccccc1O", "CC(=O)O")]
NON_CANONICAL = ["[O][C][C]", "[C][=O][C]", "[C][Ring1][C]"]  # reordered, repaired, ring skipped


def test_the_canonical_check_accepts_training_strings_only():
    for selfies in CANONICAL:
        assert decode_selfies_checked(selfies)[1]
    for selfies in NON_CANONICAL:
        smiles, canonical = decode_selfies_checked(selfies)
        assert smiles is not None and not canonical  # still a valid molecule, but not a string the model was taught
    assert decode_selfies_checked("") == (None, False)


def _scripted_decoder(monkeypatch, strings):
    """Make the decoder return ``strings`` in order, cycling; count the latent points drawn."""
    calls = {"points": 0}

    def fake_generate(loaded, z, temperature, top_k, generator, batch_size, progress):
        start = calls["points"]
        calls["points"] += z.size(0)
        return [strings[(start + i) % len(strings)] for i in range(z.size(0))]

    monkeypatch.setattr(sample_module, "_generate_selfies", fake_generate)
    return calls


def test_canonical_sampling_draws_until_it_has_enough(monkeypatch):
    calls = _scripted_decoder(monkeypatch, CANONICAL[:1] + NON_CANONICAL)  # one in four canonical
    drawn = draw_samples(None, lambda m: torch.zeros(m, 2), 10, canonical=True, progress=False)
    assert drawn.smiles == ["CCO"] * 10
    assert drawn.draws == calls["points"] >= 40 and drawn.canonical >= 10
    assert abs(drawn.canonical_rate - 0.25) < 0.01


def test_without_canonical_every_decode_is_kept_and_still_counted(monkeypatch):
    _scripted_decoder(monkeypatch, CANONICAL[:1] + NON_CANONICAL)
    drawn = draw_samples(None, lambda m: torch.zeros(m, 2), 8, canonical=False, progress=False)
    assert drawn.smiles == ["CCO", "CCO", "C=O", "C"] * 2
    assert drawn.draws == 8 and drawn.canonical == 2


def test_the_draws_are_bounded_and_the_rest_is_filled_with_a_warning(monkeypatch, caplog):
    calls = _scripted_decoder(monkeypatch, NON_CANONICAL)  # the model never writes a canonical string
    drawn = draw_samples(None, lambda m: torch.zeros(m, 2), 5, canonical=True, max_draws=4, progress=False)
    assert calls["points"] == drawn.draws == 20  # 4 per molecule asked for, no more
    assert len(drawn.smiles) == 5 and all(s is not None for s in drawn.smiles)
    assert drawn.canonical == 0 and "only 0 of 20 decodes" in caplog.text


def test_known_molecules_are_left_out_and_more_are_drawn(monkeypatch):
    phenol, acetic_acid = canonical_smiles("c1ccccc1O"), canonical_smiles("CC(=O)O")
    _scripted_decoder(monkeypatch, CANONICAL + NON_CANONICAL)  # CCO is "in the training set"
    drawn = draw_samples(None, lambda m: torch.zeros(m, 2), 6, canonical=True, exclude={"CCO"}, progress=False)
    assert sorted(set(drawn.smiles)) == sorted([phenol, acetic_acid]) and len(drawn.smiles) == 6
    assert drawn.excluded >= 3 and drawn.canonical >= 9
    _scripted_decoder(monkeypatch, CANONICAL[:1] + NON_CANONICAL)  # without canonical: non-canonical ones are kept
    kept = draw_samples(None, lambda m: torch.zeros(m, 2), 6, canonical=False, exclude={"CCO"}, progress=False)
    assert "CCO" not in kept.smiles and len(kept.smiles) == 6 and set(kept.smiles) == {"C=O", "C"}


def test_the_shipped_model_samples_canonical_molecules_reproducibly():
    loaded = load_model(sample_module.__file__.replace("sample.py", "pretrained/model.pt"))
    first = sample_prior(loaded, 40, seed=3, progress=False)
    again = sample_prior(loaded, 40, seed=3, progress=False)
    assert first.smiles == again.smiles and len(first.smiles) == 40
    assert 0.05 < first.canonical_rate < 1 and first.draws > 40
    for smiles in first.smiles:  # each one is a canonical decode: its SELFIES round-trips exactly
        assert decode_selfies_checked(encode_selfies(smiles)) == (smiles, True)


def _shipped(name: str = "model.pt"):
    return load_model(sample_module.__file__.replace("sample.py", f"pretrained/{name}"))


def test_decoding_steps_only_unfinished_rows_and_samples_as_the_plain_loop_does():
    """generate_tokens cuts rows out of the batch as they write EOS. Its tokens are those of the plain
    loop that steps every row to the end and samples with torch.multinomial, and it leaves the
    generator where that loop leaves it (noise is drawn for every row, finished or not)."""
    import math

    from molvae.sample import generate_tokens
    from molvae.vocab import BOS_ID, PAD_ID, UNK_ID

    loaded = _shipped()
    z = loaded.model.sample_latent(64, torch.Generator().manual_seed(0))  # (64, Z)
    fast_rng, plain_rng = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    fast = generate_tokens(loaded, z, temperature=1.0, generator=fast_rng)  # (64, T)

    token, hidden, steps = torch.full((64,), BOS_ID), loaded.model.initial_hidden(z), []
    finished = torch.zeros(64, dtype=torch.bool)
    with torch.no_grad():
        while not finished.all():
            logits, hidden = loaded.model.step(z, token, hidden)  # (64, V)
            logits = logits.float()
            logits[:, [PAD_ID, BOS_ID, UNK_ID]] = -math.inf
            token = torch.multinomial(logits.softmax(-1), 1, generator=plain_rng).squeeze(1).masked_fill(finished, PAD_ID)
            steps.append(token)
            finished |= token == EOS_ID
    plain = torch.stack(steps, dim=1)  # (64, T')

    lengths = (fast != PAD_ID).sum(dim=1)
    assert lengths.min() < lengths.max() - 5  # rows left the batch at different steps
    width = max(fast.size(1), plain.size(1))
    fast, plain = (torch.nn.functional.pad(x, (0, width - x.size(1)), value=PAD_ID) for x in (fast, plain))
    # Stepping fewer rows may change a logit's last bits on some CPUs; a token changes only where two
    # tokens' draws tie to within that, about once in a million steps: more than 2 rows in 64 is a bug.
    assert (fast == plain).all(dim=1).sum() >= 62
    assert torch.equal(torch.rand(4, generator=fast_rng), torch.rand(4, generator=plain_rng))


def test_beam_search_of_width_one_is_greedy_decoding_and_its_scores_are_log_probabilities():
    from molvae.sample import beam_search, generate_tokens
    from molvae.vocab import BOS_ID, PAD_ID

    loaded = _shipped()
    z = loaded.model.sample_latent(6, torch.Generator().manual_seed(0))  # (6, Z)
    greedy = generate_tokens(loaded, z, temperature=0)  # (6, T)
    sequences, _ = beam_search(loaded, z, width=1)  # (6, 1, T')
    length = min(greedy.size(1), sequences.size(2))
    assert torch.equal(sequences[:, 0, :length], greedy[:, :length])

    sequences, scores = beam_search(loaded, z, width=4)  # (6, 4, T), (6, 4)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    assert all(len({tuple(beam) for beam in beams}) == 4 for beams in sequences.tolist())  # distinct beams
    # each score is the sequence's log-probability under the decoder, teacher-forced
    tokens = sequences[:, 0]  # (6, T)
    inputs = torch.cat([torch.full((6, 1), BOS_ID), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        log_probs = loaded.model.decode_logits(z, inputs).log_softmax(-1)  # (6, T, V)
    picked = log_probs.gather(2, tokens.unsqueeze(-1)).squeeze(-1).masked_fill(tokens == PAD_ID, 0.0)
    assert torch.allclose(picked.sum(dim=1), scores[:, 0], atol=1e-3)


def test_beam_decoding_rewrites_molecules_at_least_as_well_as_greedy():
    import pandas as pd

    from molvae.sample import decode_beam, decode_latents, encode_smiles

    from .conftest import MOLECULES_CSV

    loaded = _shipped("lead.pt")  # the model `molvae reconstruct` reads molecules with
    encoded = encode_smiles(loaded, pd.read_csv(MOLECULES_CSV)["SMILES"].tolist())
    greedy = decode_latents(loaded, encoded.mu)
    beam = decode_beam(loaded, encoded.mu, width=5)
    exact = [sum(d == s for d, s in zip(decoded, encoded.smiles)) for decoded in (greedy, beam)]
    assert exact[1] >= exact[0] > len(encoded.smiles) // 2


def test_rewrites_keep_the_template_up_to_a_late_cut_change_it_there_and_stay_close():
    """A rewrite writes its template up to a cut within the last ``span`` of it, a different symbol at
    the cut, and the rest from z: at a molecule's own encoding it gives far more new molecules at
    Tanimoto >= 0.4 to it than sampled decodes of the same point (which mostly write it back)."""
    import pandas as pd
    import pytest

    from molvae.chem import tanimoto, to_mol
    from molvae.sample import decode_latents, encode_smiles, rewrite_tokens, selfies_to_smiles

    from .conftest import MOLECULES_CSV

    loaded = _shipped("lead.pt")
    encoded = encode_smiles(loaded, pd.read_csv(MOLECULES_CSV)["SMILES"].tolist()[:32])
    templates = [loaded.vocab.encode(s)[1:-1] for s in encoded.selfies]
    generator = torch.Generator().manual_seed(0)
    span = 0.3
    tokens = rewrite_tokens(loaded, encoded.mu, templates, temperature=0.7, generator=generator, span=span)
    for row, template in zip(tokens.tolist(), templates):
        written = row[: row.index(EOS_ID) if EOS_ID in row else len(row)]
        first_change = next(i for i in range(len(template) + 1)
                            if i >= len(written) or i >= len(template) or written[i] != template[i])
        assert first_change >= int((1 - span) * (len(template) + 1))  # the cut is late; before it, the template
        assert written != template  # something changed at the cut
    rewritten = selfies_to_smiles([loaded.vocab.decode(row) for row in tokens.tolist()])
    sampled = decode_latents(loaded, encoded.mu, temperature=0.7, generator=torch.Generator().manual_seed(0))

    def new_and_close(decoded):
        return sum(s is not None and s != ref and tanimoto(to_mol(s), to_mol(ref)) >= 0.4
                   for s, ref in zip(decoded, encoded.smiles))

    assert new_and_close(rewritten) > 2 * new_and_close(sampled)
    plain = rewrite_tokens(loaded, encoded.mu[:4], [None] * 4, temperature=0.0)  # no template: a greedy decode
    assert selfies_to_smiles([loaded.vocab.decode(row) for row in plain.tolist()]) == decode_latents(loaded, encoded.mu[:4])
    with pytest.raises(ValueError, match="span"):
        rewrite_tokens(loaded, encoded.mu, templates, span=0.0)
    with pytest.raises(ValueError, match="templates"):
        rewrite_tokens(loaded, encoded.mu, templates[:3])


def test_refined_encodings_are_written_back_likelier_and_batching_does_not_change_them():
    import pandas as pd
    import pytest

    from molvae.data import tokenize
    from molvae.model import VAEOutput, vae_loss
    from molvae.sample import decode_latents, encode_smiles, refine_latents

    from .conftest import MOLECULES_CSV

    loaded = _shipped("lead.pt")
    smiles = pd.read_csv(MOLECULES_CSV)["SMILES"].tolist()[:48]
    plain = encode_smiles(loaded, smiles)
    refined = encode_smiles(loaded, smiles, refine=10)
    tokens, _ = tokenize(plain.selfies, plain.smiles, loaded.vocab).batch(torch.arange(len(plain.smiles)))
    assert torch.equal(refine_latents(loaded.model, plain.mu, tokens, steps=0), plain.mu)
    in_fives = torch.cat([refine_latents(loaded.model, plain.mu[i:i + 5], tokens[i:i + 5], steps=10)
                          for i in range(0, len(tokens), 5)])
    # Batches of other shapes run other SIMD kernels (AVX2, AVX-512), so gradients differ in the last bits
    # and ten Adam steps carry that on (2.0e-5 seen on an AVX-512 CPU). A thousandth of the distance the
    # refinement moves a coordinate (0.12 on average) is far above that rounding and far below any change
    # that matters to a decode.
    moved = (refined.mu - plain.mu).abs().mean()
    assert (in_fives - refined.mu).abs().max() < 1e-3 * moved
    assert torch.equal(refined.logvar, plain.logvar) and refined.smiles == plain.smiles

    def nll(z):  # (N,) teacher-forced negative log-likelihood of each molecule's SELFIES
        with torch.no_grad():
            logits = loaded.model.decode_logits(z, tokens[:, :-1])
        return vae_loss(VAEOutput(logits, z, torch.zeros_like(z), z, None), tokens, kl_weight=0.0).reconstruction

    assert (nll(refined.mu) < nll(plain.mu)).float().mean() > 0.9  # nearly every molecule is likelier
    exact = [sum(d == s for d, s in zip(decode_latents(loaded, e.mu), e.smiles)) for e in (plain, refined)]
    assert exact[1] > exact[0]
    with pytest.raises(ValueError, match="refine steps"):
        refine_latents(loaded.model, plain.mu, tokens, steps=-1)


def test_molecules_with_a_ring_size_the_training_set_lacks_are_left_out(monkeypatch):
    cyclooctane, phenol = canonical_smiles("C1CCCCCCC1"), canonical_smiles("c1ccccc1O")
    _scripted_decoder(monkeypatch, [encode_selfies(cyclooctane), encode_selfies(phenol), CANONICAL[0]])
    drawn = draw_samples(None, lambda m: torch.zeros(m, 2), 6, canonical=True, ring_sizes={5, 6}, progress=False)
    assert cyclooctane not in drawn.smiles and len(drawn.smiles) == 6 and set(drawn.smiles) == {phenol, "CCO"}
    assert drawn.odd_rings >= 3  # every third decode, and more were drawn to make up for them
    _scripted_decoder(monkeypatch, [encode_selfies(cyclooctane), encode_selfies(phenol), CANONICAL[0]])
    every = draw_samples(None, lambda m: torch.zeros(m, 2), 6, canonical=True, progress=False)
    assert cyclooctane in every.smiles and every.odd_rings == 0


def test_training_records_the_ring_sizes_that_sampling_keeps_to(trained_run, tmp_path, capsys):
    from molvae.chem import ring_sizes, ring_sizes_in
    from molvae.cli import main

    loaded = load_model(trained_run.files["checkpoint"])
    training = loaded.training_sample
    assert loaded.ring_sizes == frozenset(ring_sizes_in(training, workers=1)) and 6 in loaded.ring_sizes
    main(["sample", "--model", str(trained_run.files["checkpoint"]), "-n", "30", "--out", str(tmp_path / "s.csv"),
          "--no-canonical", "--seed", "1"])
    import pandas as pd

    table = pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 30 and all(ring_sizes(s) <= loaded.ring_sizes for s in table["smiles"].dropna())
    assert "odd_rings_left_out" in capsys.readouterr().out

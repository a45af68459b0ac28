"""The encoder reads a padded batch as torch's GRU reads the packed one (molvae.model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.model import bidirectional_final_state

LENGTHS = torch.tensor([12, 1, 5, 12, 3, 7, 9])


def _padded_batch(pad_value: float) -> torch.Tensor:
    inputs = torch.randn(len(LENGTHS), int(LENGTHS.max()), 6, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    for row, length in enumerate(LENGTHS):
        inputs[row, length:] = pad_value  # (B, T, E) whatever sits after a molecule
    return inputs


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_bidirectional_final_state_equals_the_packed_gru(layers):
    torch.manual_seed(0)
    gru = nn.GRU(6, 8, layers, batch_first=True, bidirectional=True).double()
    inputs = _padded_batch(pad_value=100.0).requires_grad_(True)
    _, hidden = gru(pack_padded_sequence(inputs, LENGTHS, batch_first=True, enforce_sorted=False))
    packed = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2H)
    torch.testing.assert_close(bidirectional_final_state(gru, inputs, LENGTHS, packed=True), packed, rtol=0, atol=0)
    unpacked = bidirectional_final_state(gru, inputs, LENGTHS)  # the CPU's way
    # The same arithmetic in another order: float64 rounding over a dozen steps is ~1e-15.
    torch.testing.assert_close(unpacked, packed, rtol=0, atol=1e-12)
    unpacked.sum().backward()
    for row, length in enumerate(LENGTHS):
        assert torch.all(inputs.grad[row, length:] == 0)  # padding never reaches the state
        assert inputs.grad[row, :length].abs().sum() > 0


def test_bidirectional_final_state_ignores_padding_and_keeps_dropout_off_in_eval():
    gru = nn.GRU(6, 8, 2, batch_first=True, bidirectional=True, dropout=0.5).double().eval()
    with torch.no_grad():
        zeros = bidirectional_final_state(gru, _padded_batch(pad_value=0.0), LENGTHS)
        large = bidirectional_final_state(gru, _padded_batch(pad_value=1e3), LENGTHS)
    assert torch.equal(zeros, large)


def test_cpu_autocast_runs_the_recurrences_in_bf16_and_trains_the_fp32_weights():
    from molvae.model import ModelConfig, MolVAE, vae_loss

    torch.manual_seed(0)
    model = MolVAE(ModelConfig(vocab_size=12, embedding_dim=8, encoder_hidden=8, latent_dim=4, decoder_hidden=16,
                               decoder_layers=2))
    tokens = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])  # BOS ... EOS, padded
    lengths = torch.tensor([5, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(tokens, lengths)
    assert output.logits.dtype == torch.bfloat16  # the decoder's states came out of a bf16 recurrence
    vae_loss(output, tokens, 0.1).loss.backward()
    assert model.decoder.weight_hh_l1.dtype == torch.float32 and model.decoder.weight_hh_l1.grad.abs().sum() > 0
    assert model.encoder.weight_hh_l0_reverse.grad.abs().sum() > 0
    with torch.no_grad():
        fp32 = model(tokens, lengths, sample_z=False).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(tokens, lengths, sample_z=False).logits.float()
    # bf16 keeps 8 bits of mantissa: each rounding of the ~10 in a row between the tokens and a logit
    # (embedding, GRU gates over time, output layer) errs by up to 2^-9 of values of order 1-10
    torch.testing.assert_close(bf16, fp32, rtol=0, atol=0.15)
    assert (bf16 - fp32).abs().mean() < 0.02


def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_units(monkeypatch):
    import molvae.device as device_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "native_bf16", lambda: True)
    assert device_module.resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(device_module, "native_bf16", lambda: False)
    assert device_module.resolve_precision("auto", cpu) is None  # fp32 where bf16 would be emulated
    assert device_module.resolve_precision("bf16", cpu) == torch.bfloat16  # asked for by name: given

"""Tokens <-> ids: round trips (hypothesis) and special tokens kept apart from the SELFIES alphabet."""

from __future__ import annotations

import selfies as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from molvae.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, Vocabulary

ALPHABET = sorted(sf.get_semantic_robust_alphabet())


@given(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_vocabulary_round_trip(symbols):
    vocab = Vocabulary(ALPHABET)
    selfies = "".join(symbols)
    ids = vocab.encode(selfies)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert all(i >= len(SPECIAL_TOKENS) for i in ids[1:-1])
    assert vocab.decode(ids + [PAD_ID, PAD_ID]) == selfies
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def test_vocabulary_keeps_specials_apart():
    vocab = Vocabulary.build(["[C][nop][O]"])
    assert vocab.tokens[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert "[nop]" in vocab.symbols  # SELFIES padding is an ordinary symbol here
    assert vocab.unknown_symbols("[C][Xe]") == ["[Xe]"]

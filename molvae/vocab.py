"""Tokens <-> ids for SELFIES strings.

Special tokens have fixed ids and live apart from the SELFIES alphabet (SELFIES's own
``[nop]`` is an ordinary symbol here, never our padding). Saved as plain JSON-compatible data.

>>> vocab = Vocabulary.build(["[C][O]", "[C][=C]"])
>>> ids = vocab.encode("[C][O]")
>>> ids[0] == BOS_ID and ids[-1] == EOS_ID
True
>>> vocab.decode(ids)
'[C][O]'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from molvae.chem import split_selfies

__all__ = ["BOS", "BOS_ID", "EOS", "EOS_ID", "PAD", "PAD_ID", "SPECIAL_TOKENS", "UNK", "UNK_ID", "Vocabulary"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIAL_TOKENS))


class Vocabulary:
    """A fixed mapping between SELFIES symbols and integer ids, special tokens first."""

    def __init__(self, symbols: Sequence[str]):
        clashes = set(symbols) & set(SPECIAL_TOKENS)
        if clashes:
            raise ValueError(f"SELFIES symbols clash with special tokens: {sorted(clashes)}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be unique")
        self.tokens: list[str] = [*SPECIAL_TOKENS, *symbols]
        self.index: dict[str, int] = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, selfies: Iterable[str]) -> Vocabulary:
        """Vocabulary of every symbol seen in ``selfies``, sorted for reproducibility."""
        symbols: set[str] = set()
        for string in selfies:
            symbols.update(split_selfies(string))
        return cls(sorted(symbols))

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    @property
    def symbols(self) -> list[str]:
        """The SELFIES alphabet, without special tokens."""
        return self.tokens[len(SPECIAL_TOKENS):]

    def unknown_symbols(self, selfies: str) -> list[str]:
        """Symbols of ``selfies`` that are not in this vocabulary."""
        return [s for s in split_selfies(selfies) if s not in self.index]

    def encode(self, selfies: str) -> list[int]:
        """``[BOS, symbols..., EOS]`` as ids; unknown symbols map to ``UNK_ID``."""
        return [BOS_ID, *(self.index.get(s, UNK_ID) for s in split_selfies(selfies)), EOS_ID]

    def decode(self, ids: Iterable[int]) -> str:
        """SELFIES string for ids: stops at the first EOS, skips PAD/BOS/UNK.

        >>> Vocabulary(["[C]"]).decode([BOS_ID, 4, 4, EOS_ID, 4])
        '[C][C]'
        """
        symbols = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= len(SPECIAL_TOKENS):
                symbols.append(self.tokens[i])
        return "".join(symbols)

    def extended(self, symbols: Iterable[str]) -> Vocabulary:
        """This vocabulary with the new ones of ``symbols`` appended (sorted): every id it had stays.

        >>> Vocabulary(["[C]", "[O]"]).extended(["[Si]", "[C]"]).symbols
        ['[C]', '[O]', '[Si]']
        """
        return Vocabulary([*self.symbols, *sorted(set(symbols) - set(self.symbols))])

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-compatible form, stored inside checkpoints."""
        return {"special_tokens": list(SPECIAL_TOKENS), "symbols": self.symbols}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        if list(data.get("special_tokens", [])) != list(SPECIAL_TOKENS):
            raise ValueError(f"vocabulary special tokens {data.get('special_tokens')} != {list(SPECIAL_TOKENS)}")
        return cls(list(data["symbols"]))

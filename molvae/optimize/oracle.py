"""The only judge: the oracle decodes latent points, scores the molecules with the real RDKit
objective under a budget of calls, and keeps an honest account of every decode."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rdkit import DataStructs

from molvae.checkpoint import LoadedModel
from molvae.chem import (FingerprintIndex, decode_selfies_checked_list, decode_selfies_list, morgan_fingerprint,
                         morgan_words, to_mol)
from molvae.model import MolVAE
from molvae.objectives import Filters, Objective, score_smiles
from molvae.optimize.surrogates import Surrogate, surrogate_score
from molvae.sample import decode_beams, encode_smiles, rewrite_tokens
from molvae.vocab import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger(__name__)


# --- the oracle -----------------------------------------------------------------------------

def padded_tokens(symbols: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T), BOS ... EOS then PAD, and lengths (B,) for SELFIES symbol ids without BOS/EOS."""
    lengths = torch.tensor([len(ids) + 2 for ids in symbols])  # (B,)
    tokens = torch.full((len(symbols), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(symbols):
        tokens[row, : len(ids) + 2] = torch.tensor([BOS_ID, *ids, EOS_ID], dtype=torch.long)
    return tokens.to(device), lengths.to(device)


SCREEN_BY_CALLS_AFTER = 100  # calls scored before screen_by_calls starts ranking (the first ones are all scored)
_NEIGHBOURS = 8  # nearest scored molecules averaged by nearest_called_prediction


def nearest_called_prediction(fingerprints: Sequence[np.ndarray], called: FingerprintIndex,
                              called_scores: Sequence[float], neighbours: int = _NEIGHBOURS) -> list[float]:
    """Each molecule's predicted score (a surrogate fitted online to the oracle's own calls): the mean
    score of its ``neighbours`` most similar scored molecules (Tanimoto, Morgan r=2, fingerprints as
    :func:`molvae.chem.morgan_words`), weighted by squared similarity; 0 for a molecule with no
    similar one. Costs no call.

    >>> from molvae.chem import morgan_words, to_mol
    >>> fps = [morgan_words(to_mol(s)) for s in ("CCO", "CCCO", "c1ccccc1")]
    >>> called = FingerprintIndex()
    >>> called.add(fps[1]), called.add(fps[2])
    (None, None)
    >>> [round(p, 2) for p in nearest_called_prediction(fps[:1], called, [0.9, 0.1], neighbours=1)]
    [0.9]
    """
    scores = torch.tensor(list(called_scores), dtype=torch.float64)  # (C,)
    k = min(neighbours, len(called))
    predicted = []
    for fingerprint in fingerprints:
        similarity = torch.from_numpy(called.similarity(fingerprint))  # (C,)
        nearest, index = similarity.topk(k)  # (k,)
        weight = nearest.square()
        predicted.append(float((weight * scores[index]).sum() / weight.sum()) if weight.sum() > 0 else 0.0)
    return predicted


@dataclass(frozen=True)
class Candidate:
    """One molecule the oracle scored (one oracle call)."""

    smiles: str  # canonical SMILES
    score: float | None  # true combined score (higher is better); None when a hard filter failed
    values: dict[str, float]  # true raw value per objective label
    failures: tuple[str, ...]  # failed filters (empty when scored)
    similarity: float | None  # Tanimoto (Morgan r=2) to the seed; None without a seed
    method: str  # optimizer that proposed it
    step: int  # the optimizer's round that proposed it (0 = initial design)
    call: int  # 1-based oracle call that scored it
    surrogate_score: float | None = None  # surrogate mean score at the latent point it was decoded from
    surrogate_std: float | None = None  # std of that score over the surrogate's members
    surrogate_values: dict[str, float] = field(default_factory=dict)  # surrogate mean raw value per label
    proposer_score: float | None = None  # what the proposing model predicted (gradient: surrogate; bo: GP mean)


@dataclass(frozen=True)
class PointOutcome:
    """What one latent point turned into (the best of its decodes)."""

    smiles: str | None  # canonical SMILES of its best decode; None when every decode was invalid
    score: float | None  # that molecule's true score (from the cache for duplicates); None: no score
    status: str  # new | duplicate | filtered | invalid | below_floor | unscored (budget spent) | screened
    statuses: tuple[str, ...] = ()  # the status of each of the point's decodes, in decoding order


@dataclass
class OracleStats:
    """Honest account of every decode the oracle saw."""

    calls: int = 0  # molecules scored (the budget unit)
    decodes: int = 0  # molecules decoded (points x decodes per point)
    invalid: int = 0  # decodes that are not a valid molecule
    non_canonical: int = 0  # with canonical_decodes: decodes whose SELFIES is not a canonical string (no call)
    duplicates: int = 0  # decodes of a molecule already scored (no call)
    below_floor: int = 0  # valid decodes under the similarity floor (never scored, never returned)
    unscored: int = 0  # new molecules left unscored because the budget was spent
    screened: int = 0  # with screen_top: new molecules at or above the floor the surrogate ranked out of a round
    filtered: int = 0  # scored molecules that failed a hard filter (they did cost a call)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Oracle:
    """Decodes latent points, scores new molecules with the real objective, enforces the budget.

    ``reference`` (a SMILES) with ``min_similarity`` adds the similarity floor: a decoded molecule
    whose Tanimoto similarity to the reference is below the floor is neither scored nor
    returned. ``also_similar_to`` (a SMILES, e.g. the seed as written before standardization)
    holds the floor against it as well: similarity is then the lower of the two. ``known``
    pre-fills the cache (e.g. with the seed itself) so that decoding those molecules costs no call.
    ``surrogate`` annotates every candidate with its prediction.
    """

    def __init__(self, loaded: LoadedModel, objectives: Sequence[Objective], budget: int, *,
                 filters: Filters = Filters(), method: str = "", reference: str | None = None,
                 min_similarity: float = 0.0, decodes_per_point: int = 1, decode_temperature: float = 0.7,
                 decode_beam: int = 1, canonical_decodes: bool = False,
                 surrogate: Surrogate | None = None, known: Mapping[str, float | None] | None = None,
                 seed: int = 0, screen_top: int = 0, screen_by_calls: int = 0, also_similar_to: str | None = None):
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise ValueError(f"budget must be an integer >= 0, got {budget!r}")
        if not 0.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [0, 1], got {min_similarity!r}")
        if min_similarity > 0 and reference is None:
            raise ValueError("a similarity floor needs a reference molecule")
        self.loaded = loaded
        self.objectives = tuple(objectives)
        self.budget = budget
        self.filters = filters
        self.method = method
        self.reference = reference
        self.min_similarity = min_similarity
        self.decodes_per_point = decodes_per_point
        self.decode_temperature = decode_temperature
        self.decode_beam = decode_beam
        self.canonical_decodes = canonical_decodes
        self.surrogate = surrogate
        self.screen_top = screen_top
        self.screen_by_calls = screen_by_calls
        self.stats = OracleStats()
        self.candidates: list[Candidate] = []  # in call order
        self.stale_rounds = 0  # evaluate() calls in a row that scored no new molecule
        self.rewrite_span = 1.0  # rewrites cut the template within its last this share of symbols
        self.on_calls: Callable[[int], Any] | None = None  # told how many oracle calls each evaluate() used (progress)
        reference_mol = to_mol(reference) if reference is not None else None
        if reference is not None and reference_mol is None:
            raise ValueError(f"reference SMILES {reference!r} does not parse")
        if also_similar_to is not None and reference is None:
            raise ValueError("also_similar_to needs a reference molecule")
        also_mol = to_mol(also_similar_to) if also_similar_to is not None else None
        if also_similar_to is not None and also_mol is None:
            raise ValueError(f"SMILES {also_similar_to!r} (also_similar_to) does not parse")
        # fingerprinted once; a second reference with the same fingerprint (e.g. differing in stereo only) adds nothing
        self._reference_fps = [morgan_fingerprint(m) for m in (reference_mol, also_mol) if m is not None]
        if len(self._reference_fps) == 2 and self._reference_fps[0] == self._reference_fps[1]:
            del self._reference_fps[1]
        self._cache: dict[str, float | None] = dict(known or {})
        self._similarities: dict[str, float] = {}  # SMILES -> similarity to the reference
        self._decoded: dict[str, tuple[str | None, bool]] = {}  # SELFIES -> (canonical SMILES, is_canonical)
        self._symbols: dict[str, list[int] | None] = {}  # SMILES -> SELFIES symbol ids; None: the model cannot read it
        self._mu: dict[str, torch.Tensor] = {}  # SMILES -> encoder mean (Z,) by the current model
        self._generator = torch.Generator(device=loaded.device).manual_seed(seed)
        self._called_fps = FingerprintIndex()  # fingerprints of the molecules scored so far, in call order
        self._called_scores: list[float] = []  # and their scores (a filtered molecule counts as 0)
        score_smiles([], self.objectives)  # imports a custom scorer now: a wrong path fails before decoding

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def model(self) -> MolVAE:
        return self.loaded.model

    @property
    def latent_dim(self) -> int:
        return self.loaded.model.config.latent_dim

    @property
    def remaining(self) -> int:
        return self.budget - self.stats.calls

    @property
    def exhausted(self) -> bool:
        return self.stats.calls >= self.budget

    def best(self) -> Candidate | None:
        """The best-scoring candidate so far (earliest on ties)."""
        scored = [c for c in self.candidates if c.score is not None]
        return max(scored, key=lambda c: c.score) if scored else None

    def similarity(self, smiles: str) -> float | None:
        """Tanimoto similarity of a valid SMILES to the reference, or the lower of it and the one
        to ``also_similar_to`` (None without a reference)."""
        if not self._reference_fps:
            return None
        if smiles not in self._similarities:
            fingerprint = morgan_fingerprint(to_mol(smiles))
            self._similarities[smiles] = min(DataStructs.BulkTanimotoSimilarity(fingerprint, self._reference_fps))
        return self._similarities[smiles]

    def _decode(self, z: torch.Tensor, templates: Sequence[Sequence[int]] | None = None
                ) -> list[list[tuple[str | None, bool]]]:
        """``(canonical SMILES, is_canonical)`` per decode of each point: greedy (or, with
        ``decode_beam`` > 1, every distinct beam-search decode, canonical ones first), then
        ``decodes_per_point - 1`` sampled ones; with ``templates`` (one token string per point) the
        sampled decodes are rewrites of the point's template (:func:`molvae.sample.rewrite_tokens`).
        Without ``canonical_decodes`` a decode's SELFIES is not checked and ``is_canonical`` is True."""
        n, extra = z.size(0), self.decodes_per_point - 1
        greedy = 0 if self.decode_beam > 1 else n  # greedy rows ahead of the sampled ones, all in one batch
        points = z.repeat(extra + (1 if greedy else 0), 1)  # decode j of point i at row j * n + i
        temperature = torch.tensor([0.0] * greedy + [self.decode_temperature] * (n * extra))
        written = [None] * greedy + list(templates or [None] * n) * extra
        decoded = self._smiles(rewrite_tokens(self.loaded, points, written, temperature, self._generator,
                                              self.rewrite_span))
        first = decode_beams(self.loaded, z, self.decode_beam) if greedy == 0 else [[d] for d in decoded[:n]]
        rest = decoded[greedy:]
        return [[*first[i], *rest[i::n]] for i in range(n)]

    def _smiles(self, tokens: torch.Tensor) -> list[tuple[str | None, bool]]:
        """``(canonical SMILES, is_canonical)`` of each row of token ids (N, T); each distinct SELFIES
        string is read once per oracle (a search decodes the same strings many times)."""
        selfies = [self.loaded.vocab.decode(row) for row in tokens.tolist()]
        new = list(dict.fromkeys(s for s in selfies if s not in self._decoded))
        read = (decode_selfies_checked_list(new) if self.canonical_decodes
                else [(smiles, True) for smiles in decode_selfies_list(new)])
        self._decoded.update(zip(new, read))
        return [self._decoded[s] for s in selfies]

    def symbols(self, smiles: Sequence[str]) -> dict[str, list[int]]:
        """Each molecule's SELFIES symbol ids (no BOS/EOS, a template for rewrites), for those the
        model can read; standardized and encoded once per oracle (:meth:`encodings`)."""
        new = list(dict.fromkeys(s for s in smiles if s not in self._symbols))
        if new:
            encoded = encode_smiles(self.loaded, new)
            for row, position in enumerate(encoded.index):
                self._symbols[new[position]] = self.loaded.vocab.encode(encoded.selfies[row])[1:-1]
                self._mu[new[position]] = encoded.mu[row].to(self.device)
            self._symbols.update((new[position], None) for position, _, _ in encoded.rejected)
        return {s: self._symbols[s] for s in smiles if self._symbols[s] is not None}

    def encodings(self, smiles: Sequence[str]) -> dict[str, tuple[torch.Tensor, list[int]]]:
        """Each molecule's encoding (mu, (Z,)) and SELFIES symbol ids, for those the model can read;
        encoded once per oracle (the screen and the search's parents ask for the same molecules) and
        again, from the ids, after :meth:`model_changed`."""
        symbols = self.symbols(smiles)
        stale = [s for s in symbols if s not in self._mu]
        if stale:
            with torch.no_grad():
                mu, _ = self.model.encode(*padded_tokens([symbols[s] for s in stale], self.device))
            self._mu.update(zip(stale, mu.float()))
        return {s: (self._mu[s], ids) for s, ids in symbols.items()}

    def model_changed(self) -> None:
        """Forget the encodings :meth:`encodings` kept, not the SELFIES (:mod:`molvae.optimize.finetune`)."""
        self._mu.clear()

    def reference_template(self) -> list[int] | None:
        """The reference molecule's SELFIES symbol ids, the template of rewrites around it (None
        without a reference, or when the model cannot read it)."""
        if self.reference is None:
            return None
        return self.encodings([self.reference]).get(self.reference, (None, None))[1]

    @torch.no_grad()
    def _annotate(self, z: torch.Tensor) -> list[dict[str, Any]]:
        if self.surrogate is None:
            return [{} for _ in range(z.size(0))]
        members = self.surrogate.members(z)  # (K, N, P)
        scores = surrogate_score(self.objectives, members)  # (K, N)
        mean_values = members.mean(dim=0).cpu()  # (N, P)
        mean, std = scores.mean(dim=0).cpu(), scores.std(dim=0, unbiased=False).cpu()  # (N,), (N,)
        labels = self.surrogate.labels
        return [{"surrogate_score": float(mean[i]), "surrogate_std": float(std[i]),
                 "surrogate_values": {label: float(mean_values[i, j]) for j, label in enumerate(labels)}}
                for i in range(z.size(0))]

    def evaluate(self, z: torch.Tensor, step: int, proposer_score: torch.Tensor | None = None,
                 templates: Sequence[Sequence[int]] | None = None) -> list[PointOutcome]:
        """Decode latent points z (N, Z), score the new molecules within the budget, one outcome per point.

        ``proposer_score`` (N,) is what the proposing model predicted for each point; it is
        stored on the candidates for the surrogate-gap report. ``templates`` (one token string
        per point, :meth:`encodings`) turns the sampled decodes into rewrites of them.
        """
        z = z.detach().to(self.device, torch.float32)  # (N, Z)
        calls_before = self.stats.calls
        decoded = self._decode(z, templates)
        notes = self._annotate(z)
        proposed = proposer_score.detach().cpu().tolist() if proposer_score is not None else [None] * len(decoded)
        rows: list[list[list[Any]]] = []  # per point, [SMILES, status] per decode
        pending: dict[str, int] = {}  # new molecules at or above the floor -> the first point that decoded them
        for i, per_point in enumerate(decoded):
            row = []
            for smiles, canonical in per_point:
                self.stats.decodes += 1
                if self.canonical_decodes and smiles is not None and not canonical:
                    self.stats.non_canonical += 1
                    row.append([smiles, "non_canonical"])
                    continue
                status = self._check(smiles)
                if status is None:
                    status = "again" if smiles in pending else "pending"
                    pending.setdefault(smiles, i)
                row.append([smiles, status])
            rows.append(row)
        results = {}
        for smiles in self._screen(list(pending)):  # likeliest best first, so a budget running out keeps the best
            i = pending[smiles]
            results[smiles] = self._score(smiles, step, notes[i], proposed[i])
        for smiles in pending.keys() - results.keys():
            self.stats.screened += 1
            results[smiles] = "screened"
        for row in rows:
            for entry in row:
                if entry[1] == "pending":
                    entry[1] = results[entry[0]]
                elif entry[1] == "again":  # decoded twice this round: a duplicate once it was scored
                    entry[1] = "duplicate" if results[entry[0]] in ("new", "filtered") else results[entry[0]]
                    self.stats.duplicates += entry[1] == "duplicate"
                    self.stats.unscored += entry[1] == "unscored"
                    self.stats.screened += entry[1] == "screened"
        self.stale_rounds = 0 if self.stats.calls > calls_before else self.stale_rounds + 1
        if self.on_calls is not None and self.stats.calls > calls_before:
            self.on_calls(self.stats.calls - calls_before)
        return [self._outcome([tuple(entry) for entry in row]) for row in rows]

    def should_stop(self, max_stale_rounds: int) -> bool:
        """The budget is spent, or ``max_stale_rounds`` rounds in a row scored nothing new."""
        return self.exhausted or self.stale_rounds >= max_stale_rounds

    def _check(self, smiles: str | None) -> str | None:
        """``invalid``, ``duplicate`` (already scored) or ``below_floor``; None for a new molecule at or
        above the floor."""
        if smiles is None:
            self.stats.invalid += 1
            return "invalid"
        if smiles in self._cache:
            self.stats.duplicates += 1
            return "duplicate"
        similarity = self.similarity(smiles)
        if similarity is not None and similarity < self.min_similarity:
            self.stats.below_floor += 1
            return "below_floor"
        return None

    def _screen(self, smiles: list[str]) -> list[str]:
        """The new molecules of a round to score, in order: with ``screen_top`` and a surrogate, the
        ``screen_top`` it predicts best from their own encodings (unencodable ones last); with
        ``screen_by_calls``, that many predicted best from the calls so far
        (:func:`nearest_called_prediction`); else all."""
        if (self.screen_by_calls and len(smiles) > self.screen_by_calls
                and len(self._called_scores) >= SCREEN_BY_CALLS_AFTER):
            fingerprints = [morgan_words(to_mol(s)) for s in smiles]
            predicted = nearest_called_prediction(fingerprints, self._called_fps, self._called_scores)
            order = sorted(range(len(smiles)), key=lambda i: -predicted[i])[: self.screen_by_calls]
            return [smiles[i] for i in order]
        if not self.screen_top or self.surrogate is None or len(smiles) <= self.screen_top:
            return smiles
        encodings = self.encodings(smiles)
        readable = [i for i, s in enumerate(smiles) if s in encodings]
        predicted = torch.full((len(smiles),), -math.inf)
        if readable:
            with torch.no_grad():
                members = self.surrogate.members(torch.stack([encodings[smiles[i]][0] for i in readable]))  # (K, N, P)
            predicted[readable] = surrogate_score(self.objectives, members).mean(dim=0).float().cpu()
        order = predicted.argsort(descending=True, stable=True)[: self.screen_top]
        return [smiles[i] for i in order.tolist()]

    def _score(self, smiles: str, step: int, note: dict[str, Any], proposed: float | None) -> str:
        """Score a new molecule at or above the floor (one call): ``new``, ``filtered``, or
        ``unscored`` when the budget is spent."""
        if self.exhausted:
            self.stats.unscored += 1
            return "unscored"
        (scored,) = score_smiles([smiles], self.objectives, self.filters)
        self.stats.calls += 1
        self._cache[smiles] = scored.score
        if self.screen_by_calls:
            self._called_fps.add(morgan_words(to_mol(smiles)))
            self._called_scores.append(0.0 if scored.score is None else scored.score)
        if scored.score is None:
            self.stats.filtered += 1
        self.candidates.append(Candidate(
            smiles=smiles, score=scored.score, values=dict(scored.values), failures=scored.failures,
            similarity=self.similarity(smiles), method=self.method, step=step, call=self.stats.calls,
            proposer_score=proposed, **note))
        return "new" if scored.score is not None else "filtered"

    def _outcome(self, row: list[tuple[str | None, str]]) -> PointOutcome:
        """The point's best decode: the highest true score, else the most informative status."""
        rank = {"new": 0, "duplicate": 1, "filtered": 2, "below_floor": 3, "unscored": 4, "screened": 5,
                "non_canonical": 6, "invalid": 7}
        statuses = tuple(status for _, status in row)
        outcomes = [PointOutcome(smiles, self._cache.get(smiles) if status in ("new", "duplicate") else None, status,
                                 statuses) for smiles, status in row]
        scored = [o for o in outcomes if o.score is not None]
        if scored:
            return max(scored, key=lambda o: (o.score, -rank[o.status]))
        return min(outcomes, key=lambda o: rank[o.status])

    def best_curve(self) -> list[float]:
        """Best true score after each call (NaN until the first scored molecule)."""
        curve, best = [], -math.inf
        for candidate in self.candidates:
            if candidate.score is not None:
                best = max(best, candidate.score)
            curve.append(best if best > -math.inf else math.nan)
        return curve

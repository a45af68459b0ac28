"""The neighbourhood search (molvae.optimize.neighbourhood): a population search from random
starts, hill climbing around a seed."""

from __future__ import annotations

import pytest
import torch

from molvae.objectives import parse_objectives
from molvae.optimize import optimize_config_from_dict, optimize_leads, run_method

from ..conftest import CAFFEINE
from .conftest import FAST


def test_neighbourhood_without_a_seed_explores_around_its_best_molecules(loaded, evaluations):
    """From random starts the neighbourhood search is a population search: after a round of prior
    draws, three quarters of each round lie within twice the radius of a point that scored a new
    molecule (one of the best 16 so far), and a quarter are fresh prior draws."""
    config = optimize_config_from_dict({"budget": 40, "batch_size": 8, "lead_radius": 0.5}, FAST)
    result = run_method(loaded, parse_objectives("qed:max"), "neighbourhood", config)
    assert 0 < result.stats.calls <= 40 and len(evaluations) >= 2
    assert all(e.templates is None for e in evaluations)  # rewrites are for searches around a seed
    first = evaluations[0]
    scored = first.z[[o.status == "new" for o in first.outcomes]]  # (S, Z)
    assert len(scored) > 0
    second_z = evaluations[1].z
    fresh, around = second_z[:2], second_z[2:]  # a quarter of 8 fresh, then 6 around the elites
    radius = config.lead_radius / 2  # the starting radius; points lie at 0.25x .. 2x of it
    assert float(torch.cdist(around, scored).min(dim=1).values.max()) <= 2 * radius + 1e-5
    assert float(torch.cdist(fresh, scored).min(dim=1).values.min()) > 1e-3  # not copies of elites


def test_from_random_starts_parents_may_sit_at_their_own_encodings(loaded, evaluations):
    """With ``encode_parents`` a molecule found from random starts is a parent at its encoding (mu),
    not at the point it was decoded from: the next round explores within twice the radius of those."""
    config = optimize_config_from_dict({"budget": 40, "batch_size": 8, "lead_radius": 0.5,
                                        "encode_parents": True}, FAST)
    run_method(loaded, parse_objectives("qed:max"), "neighbourhood", config)
    first = evaluations[0]
    found = [(point, o.smiles) for point, o in zip(first.z, first.outcomes) if o.status == "new"]
    encodings = first.oracle.encodings([smiles for _, smiles in found])
    assert encodings  # the model reads some of its own molecules
    parents = torch.stack([encodings[smiles][0] if smiles in encodings else point for point, smiles in found])
    around = evaluations[1].z[2:]  # after the 2 fresh draws
    assert float(torch.cdist(around, parents).min(dim=1).values.max()) <= 2 * config.lead_radius / 2 + 1e-5
    assert float(torch.cdist(parents, first.z).min(dim=1).values.max()) > 1e-3  # an encoding is not its point


@pytest.mark.parametrize("beam, rewrites", [(1, 3), (4, 3), (1, 0)])
def test_neighbourhood_search_adapts_its_radius_and_records_an_empty_neighbourhood(loaded, beam, rewrites):
    """Budget never exceeded, nothing below the floor, and a floor nothing can clear ends as a recorded
    failure (no candidate, no improvement) instead of an error or a loop; with greedy or beam decodes,
    with rewrites of the parents or sampled decodes."""
    objectives = parse_objectives("qed:max")
    config = optimize_config_from_dict({"min_similarity": 0.3, "lead_radius": 2.0, "budget": 12, "batch_size": 6,
                                        "max_stale_rounds": 4, "decode_beam": beam, "rewrites": rewrites}, FAST)
    (result,) = optimize_leads(loaded, [CAFFEINE], objectives, "neighbourhood", config)
    assert result.stats.calls <= 12 and all(c.similarity >= 0.3 for c in result.candidates)
    assert result.stats.decodes >= 2 * result.stats.calls  # greedy (or beam) and sampled decodes of each point
    impossible = optimize_config_from_dict({"min_similarity": 1.0, "budget": 12, "batch_size": 6,
                                            "max_stale_rounds": 3, "decode_beam": beam, "rewrites": rewrites}, FAST)
    (stuck,) = optimize_leads(loaded, [CAFFEINE], objectives, "neighbourhood", impossible)
    assert stuck.status == "ok" and not stuck.success and stuck.best is None and stuck.improvement == 0.0
    assert stuck.stats.calls == 0 and stuck.stats.below_floor + stuck.stats.duplicates + stuck.stats.invalid > 0


def test_neighbourhood_around_a_seed_rewrites_the_seed_and_its_best_molecules(loaded, evaluations):
    """Around a seed the sampled decodes are rewrites: the first round's templates are the seed's
    SELFIES, later ones the seed's or a molecule the search scored (parents at their own encoding)."""
    from molvae.sample import encode_smiles

    config = optimize_config_from_dict({"min_similarity": 0.2, "budget": 40, "batch_size": 3,
                                        "max_stale_rounds": 4}, FAST)
    (result,) = optimize_leads(loaded, [CAFFEINE], parse_objectives("qed:max"), "neighbourhood", config)

    def template(smiles):  # the standardized molecule's SELFIES, as the model reads it; a parent it
        encoded = encode_smiles(loaded, [smiles])  # cannot read gets an empty one (a plain sampled decode)
        return tuple(loaded.vocab.encode(encoded.selfies[0])[1:-1]) if len(encoded.index) else ()

    rounds = [[tuple(t) for t in e.templates] for e in evaluations]
    assert set(rounds[0]) == {template(result.smiles)}
    allowed = {template(result.smiles)} | {template(c.smiles) for c in result.candidates}
    assert all(set(r) <= allowed for r in rounds) and len(rounds) > 1
    assert result.stats.calls <= 40 and all(c.similarity >= 0.2 for c in result.candidates)
    per_point = 1 + config.rewrites  # the greedy decode and the rewrites of each point
    assert result.stats.decodes == per_point * 3 * len(rounds)

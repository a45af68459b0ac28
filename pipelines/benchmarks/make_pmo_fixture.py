#!/usr/bin/env python
"""Reference values of the 20 PMO objectives, computed once with the real packages, for tests/test_pmo.py.

molvae's ``pmo:`` objectives (molvae/pmo.py) must equal, to 1e-6 on every molecule here:

* the ``guacamol`` package (0.5.5) on the 16 tasks not built on formula isomers (PMO's TDC oracles
  compute these exactly as GuacaMol does);
* PyTDC 0.3.6 (the version mol_opt pins) on ``isomers_c7h8n2o2``, ``isomers_c9h10n2o2pf2cl`` and
  ``zaleplon_mpo``;
* PyTDC 0.3.7's ``sitagliptin_mpo_prev`` on ``sitagliptin_mpo``: PMO's function. PyTDC 0.3.6 as
  released (February 2022) leaves the three modifiers out of sitagliptin_mpo (raw logP, TPSA and
  similarity in the geometric mean: values far above 1, NaN for negative logP); TDC fixed that in
  April 2022 and, when it changed the isomer scoring in 0.3.7, kept the PMO-era function with the
  fix as ``sitagliptin_mpo_prev`` (0.3.6's isomer scoring).

Every molecule is passed as RDKit canonical SMILES, as mol_opt's oracle passes it (the 0.3.6 isomer
scoring reads atom counts from the SMILES text). Neither package imports as released with today's
NumPy, SciPy and RDKit, so they live in a throwaway environment outside the repository, never in
molvae's; two import shims stand in for modules the scoring path never calls (``fcd``, imported by
guacamol's Frechet benchmark, and ``rdkit.six``, removed from RDKit, whose ``iteritems`` TDC imports).
The commands that made tests/fixtures/pmo_reference.csv (Python 3.11, RDKit as in molvae's venv)::

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install --no-deps guacamol==0.5.5 PyTDC==0.3.6
    /tmp/refenv/bin/pip install rdkit==2026.9.1 numpy==1.26.4 scipy==1.11.4 pandas tqdm joblib networkx \\
        requests fuzzywuzzy packaging scikit-learn==1.5.2
    /tmp/refenv/bin/pip install --no-deps --target /tmp/tdc037 PyTDC==0.3.7
    PYTHONPATH=. /tmp/refenv/bin/python pipelines/benchmarks/make_pmo_fixture.py --tdc037 /tmp/tdc037 \\
        --out tests/fixtures/pmo_reference.csv
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

# (name, SMILES as written): the tasks' own drugs, near-isomers of the formulas, drug-like molecules
# and edge cases of the SMILES-text atom count (aromatic-only, bracket atoms, charges, fragments).
MOLECULES = [
    ("celecoxib", "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"),
    ("troglitazone", "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O"),
    ("thiothixene", "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1"),
    ("albuterol", "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1"),
    ("mestranol", "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1"),
    ("camphor", "CC1(C)C2CCC1(C)C(=O)C2"),
    ("menthol", "CC(C)C1CCC(C)CC1O"),
    ("tadalafil", "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C"),
    ("sildenafil", "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C"),
    ("osimertinib", "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34"),
    ("fexofenadine", "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4"),
    ("ranolazine", "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2"),
    ("perindopril", "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC"),
    ("amlodipine", r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC"),
    ("sitagliptin", "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F"),
    ("zaleplon", "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1"),
    ("valsartan", "CCCCC(=O)N(Cc1ccc(-c2ccccc2-c2nn[nH]n2)cc1)C(C(C)C)C(=O)O"),
    ("deco_hop_start", "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C"),
    ("deco_hop_changed", "CCCOc1cc2ncnc(Nc3ccc(F)cc3)c2cc1OC"),
    ("scaffold_hop_like", "CCCOc1ccc(cc1)C(=O)Nc1ccc2ncsc2c1"),
    ("aripiprazole", "Clc4cccc(N3CCN(CCCCOc2ccc1c(NC(=O)CC1)c2)CC3)c4Cl"),
    ("hydroxybenzohydrazide", "NNC(=O)c1ccc(O)cc1"),  # C7H8N2O2
    ("methylnitroaniline", "Cc1ccc([N+](=O)[O-])c(N)c1"),  # C7H8N2O2, charged
    ("hydroxyphenylurea", "NC(=O)Nc1ccccc1O"),  # C7H8N2O2
    ("c9h10n2o2pf2cl", "CCNC(=O)c1ccc(Cl)cc1NP(=O)(F)F"),  # C9H10N2O2PF2Cl
    ("near_c9_isomer", "CNC(=O)c1ccc(Cl)cc1CP(=O)(F)F"),
    ("near_zaleplon_formula", "CCOC(=O)c1ccc(-c2cc(N)n(Cc3ccccc3)n2)cc1"),
    ("zaleplon_analog", "CCN(C(C)=O)c1cccc(-c2ccnc3c(C(N)=O)cnn23)c1"),
    ("sitagliptin_analog", "CC(C)CC(N)CC(=O)N1CCn2c(nnc2C(F)(F)F)C1"),
    ("valsartan_smarts_hit", "CCCCC(=O)N(Cc1ccc(-c2ccccc2)cc1)C(C(C)C)C(=O)O"),
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"),
    ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"),
    ("diazepam", "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21"),
    ("imatinib", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"),
    ("methane", "C"),
    ("benzene", "c1ccccc1"),
    ("pyrrole", "c1cc[nH]c1"),
    ("tetramethylammonium", "C[N+](C)(C)C"),
    ("ethanol_water", "CCO.O"),
    ("sodium_chloride", "[Na+].[Cl-]"),
    ("deuterated", "[2H]C([2H])([2H])c1ccccc1"),
    ("long_alkane", "C" * 60),
    ("big_ring", "C1CCCCCCCCCCCCCCCCCCC1"),
    ("steroid", "C[C@]12CC[C@H]3[C@@H](CCC4=CC(=O)CC[C@@]34C)[C@@H]1CC[C@@H]2O"),
]

GUACAMOL_TASKS = [
    "qed", "celecoxib_rediscovery", "troglitazone_rediscovery", "thiothixene_rediscovery",
    "albuterol_similarity", "mestranol_similarity", "median1", "median2", "osimertinib_mpo", "fexofenadine_mpo",
    "ranolazine_mpo", "perindopril_mpo", "amlodipine_mpo", "valsartan_smarts", "deco_hop", "scaffold_hop",
]
TDC036_TASKS = ["isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "zaleplon_mpo"]
TDC_PREV_TASKS = ["sitagliptin_mpo"]  # PyTDC 0.3.7's sitagliptin_mpo_prev


def import_shims() -> None:
    """Stand-ins for two modules the scoring path imports but never calls (see the docstring)."""
    six = types.ModuleType("rdkit.six")
    six.iteritems = lambda mapping: iter(mapping.items())
    sys.modules.setdefault("rdkit.six", six)
    sys.modules.setdefault("fcd", types.ModuleType("fcd"))


def guacamol_scores(smiles: list[str]) -> dict[str, list[float]]:
    from guacamol import standard_benchmarks as sb

    objectives = {
        "qed": sb.qed_benchmark(),
        "celecoxib_rediscovery": sb.similarity("CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F",
                                               "Celecoxib", fp_type="ECFP4", threshold=1.0, rediscovery=True),
        "troglitazone_rediscovery": sb.similarity("Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O",
                                                  "Troglitazone", fp_type="ECFP4", threshold=1.0, rediscovery=True),
        "thiothixene_rediscovery": sb.similarity("CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1",
                                                 "Thiothixene", fp_type="ECFP4", threshold=1.0, rediscovery=True),
        "albuterol_similarity": sb.similarity("CC(C)(C)NCC(O)c1ccc(O)c(CO)c1", "Albuterol", fp_type="FCFP4",
                                              threshold=0.75),
        "mestranol_similarity": sb.similarity("COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1",
                                              "Mestranol", fp_type="AP", threshold=0.75),
        "median1": sb.median_camphor_menthol(),
        "median2": sb.median_tadalafil_sildenafil(),
        "osimertinib_mpo": sb.hard_osimertinib(),
        "fexofenadine_mpo": sb.hard_fexofenadine(),
        "ranolazine_mpo": sb.ranolazine_mpo(),
        "perindopril_mpo": sb.perindopril_rings(),
        "amlodipine_mpo": sb.amlodipine_rings(),
        "valsartan_smarts": sb.valsartan_smarts(),
        "deco_hop": sb.decoration_hop(),
        "scaffold_hop": sb.scaffold_hop(),
    }
    return {task: [float(objectives[task].objective.score(s)) for s in smiles] for task in GUACAMOL_TASKS}


def tdc_scores(smiles: list[str], prev: bool) -> dict[str, list[float]]:
    from tdc.chem_utils.oracle import oracle

    if prev:
        functions = {"sitagliptin_mpo": oracle.sitagliptin_mpo_prev}
    else:
        functions = {"isomers_c7h8n2o2": oracle.isomers_c7h8n2o2,
                     "isomers_c9h10n2o2pf2cl": oracle.isomers_c9h10n2o2pf2cl, "zaleplon_mpo": oracle.zaleplon_mpo}
    return {task: [float(function(s)) for s in smiles] for task, function in functions.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="CSV to write (tests/fixtures/pmo_reference.csv)")
    p.add_argument("--tdc037", required=True, help="folder holding PyTDC 0.3.7 (pip install --target)")
    p.add_argument("--prev-only", action="store_true", help=argparse.SUPPRESS)  # the PyTDC 0.3.7 subprocess
    args = p.parse_args(argv)
    if not (Path(args.tdc037) / "tdc").is_dir():
        raise FileNotFoundError(f"{args.tdc037}: no PyTDC 0.3.7 here (pip install --no-deps --target DIR PyTDC==0.3.7)")
    import_shims()
    from rdkit import Chem

    canonical = [Chem.MolToSmiles(Chem.MolFromSmiles(smiles)) for _, smiles in MOLECULES]
    if args.prev_only:  # runs with PyTDC 0.3.7 first on the path
        json.dump(tdc_scores(canonical, prev=True), sys.stdout)
        return 0
    import guacamol
    import tdc

    scores = guacamol_scores(canonical)
    scores.update(tdc_scores(canonical, prev=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([args.tdc037, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, "--out", args.out, "--tdc037", args.tdc037, "--prev-only"],
                          capture_output=True, text=True, env=env, check=True)
    scores.update(json.loads(done.stdout))
    versions = {"guacamol": guacamol.__version__ if hasattr(guacamol, "__version__") else "0.5.5",
                "tdc": getattr(tdc, "__version__", "0.3.6")}
    import pandas as pd
    import rdkit

    table = pd.DataFrame({"name": [name for name, _ in MOLECULES], "smiles": [s for _, s in MOLECULES],
                          "canonical": canonical})
    for task in GUACAMOL_TASKS + TDC036_TASKS + TDC_PREV_TASKS:
        table[task] = scores[task]
    table.to_csv(args.out, index=False, float_format="%.12g")
    print(f"{len(table)} molecules x {len(table.columns) - 3} tasks -> {args.out} "
          f"(RDKit {rdkit.__version__}, {versions})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)

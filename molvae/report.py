"""Outputs a chemist can open: sample tables (CSV), SDF files, molecule grids and plots (PNG)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rdkit import Chem
from rdkit.Chem import Draw

from molvae.chem import REPORT_PROPERTIES, canonical_smiles, compute_properties, to_mol

__all__ = ["loss_curves_png", "molecule_grid_png", "sample_table", "scatter_png", "write_sdf"]


def sample_table(smiles: Sequence[str | None], training: set[str] | None = None,
                 properties: Sequence[str] = REPORT_PROPERTIES) -> pd.DataFrame:
    """One row per generated molecule: SMILES, validity, novelty flag, RDKit properties."""
    rows = []
    for raw in smiles:
        canonical = canonical_smiles(raw) if raw else None
        row: dict[str, object] = {"smiles": canonical or (raw or ""), "valid": canonical is not None}
        row["novel"] = (canonical not in training) if (canonical and training is not None) else None
        if canonical:
            row.update(compute_properties(to_mol(canonical), properties))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["smiles", "valid", "novel", *properties])
    if training is None:
        table = table.drop(columns="novel")
    return table


def write_sdf(table: pd.DataFrame, path: str | os.PathLike, smiles_column: str = "smiles") -> int:
    """Write the valid molecules of a table to SDF, other columns as SD properties; returns the count."""
    written = 0
    with Chem.SDWriter(str(path)) as writer:
        for _, row in table.iterrows():
            mol = to_mol(row[smiles_column]) if isinstance(row[smiles_column], str) else None
            if mol is None:
                continue
            for key, value in row.items():
                if key != smiles_column and value is not None and not (isinstance(value, float) and pd.isna(value)):
                    mol.SetProp(str(key), str(value))
            writer.write(mol)
            written += 1
    return written


def molecule_grid_png(smiles: Sequence[str], path: str | os.PathLike, legends: Sequence[str] | None = None,
                      per_row: int = 6, size: int = 250) -> Path:
    """A PNG grid of molecule drawings (invalid entries skipped)."""
    pairs = [(to_mol(s), legends[i] if legends else s) for i, s in enumerate(smiles) if s]
    pairs = [(m, legend) for m, legend in pairs if m is not None]
    image = Draw.MolsToGridImage([m for m, _ in pairs] or [Chem.Mol()], molsPerRow=per_row, subImgSize=(size, size),
                                 legends=[legend[:40] for _, legend in pairs] or [""])
    image.save(str(path))
    return Path(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def loss_curves_png(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    """Training curves: losses, KL and KL weight, accuracy/reconstruction, sample quality."""
    plt = _pyplot()
    frame = pd.DataFrame(history)
    epochs = frame["epoch"] + 1
    fig, axes = plt.subplots(2, 3, figsize=(16, 7))
    panels = [
        (axes[0, 0], ["train_reconstruction", "val_reconstruction"], "reconstruction NLL (nats/molecule)"),
        (axes[0, 1], ["train_kl", "val_kl", "active_units"], "KL (nats) and active units"),
        (axes[1, 0], ["train_token_accuracy", "val_token_accuracy", "val_exact_reconstruction"], "accuracy"),
        (axes[1, 1], ["sample_validity", "sample_uniqueness", "sample_novelty", "sample_filters", "sample_qed",
                      "sample_canonical"], "prior samples: shares and mean QED"),
        (axes[0, 2], ["sample_fcd"], "prior samples: FCD to the reference (lower is better)"),
        (axes[1, 2], ["sample_sa"], "prior samples: mean SA score"),
    ]
    for ax, columns, title in panels:
        for column in columns:
            if column in frame:
                ax.plot(epochs, frame[column], marker="o", ms=3, label=column)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def scatter_png(x: Sequence[float], y: Sequence[float], colour: Sequence[float], path: str | os.PathLike,
                title: str, colour_label: str) -> Path:
    """A 2-D scatter coloured by a value (latent-space maps)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    points = ax.scatter(x, y, c=colour, s=4, cmap="viridis", alpha=0.7)
    fig.colorbar(points, ax=ax, label=colour_label)
    ax.set_title(title)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

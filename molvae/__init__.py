"""molvae: a SELFIES GRU VAE for molecule generation and latent-space property optimization."""

from pathlib import Path

__version__ = "0.1.0"

# 25,000 MOSES training molecules bundled with the source tree (data/README.md): the default data
# of the quickstart and the bench, and the surrogate data of the pretrained model in a fresh clone.
BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data" / "moses_sample_25k.csv"

"""molvae: a SELFIES GRU VAE for molecule generation and latent-space property optimization."""

__version__ = "0.1.0"

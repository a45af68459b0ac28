"""Two-process DistributedDataParallel check on CPU (gloo), run by tests/test_distributed.py.

Usage: python tests/ddp_worker.py OUT_DIR. Spawns two ranks with a file-based rendezvous; each
writes OUT_DIR/rank{R}.json with its gradient check and a checksum of its final weights.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "molecules.csv"


def worker(rank: int, world: int, out: str) -> None:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world)

    from molvae.data import DataConfig, prepare, tokenize
    from molvae.distributed import DistributedContext, wrap_model
    from molvae.model import ModelConfig, MolVAE, vae_loss
    from molvae.training import TrainConfig, fit
    from molvae.vocab import Vocabulary

    prepared = prepare(FIXTURE, DataConfig(cache_dir="", workers=1))
    vocab = Vocabulary.build(prepared.kept["selfies"])
    data = tokenize(prepared.kept["selfies"].tolist(), prepared.kept["smiles"].tolist(), vocab)
    config = ModelConfig(vocab_size=len(vocab), embedding_dim=16, encoder_hidden=32, decoder_hidden=64,
                         decoder_layers=1, latent_dim=8, dropout=0.0)
    torch.manual_seed(0)
    model = MolVAE(config)
    reference = MolVAE(config)
    reference.load_state_dict(model.state_dict())
    context = DistributedContext(rank, world, rank)
    ddp = wrap_model(model, context, torch.device("cpu"))

    # One step: each rank sees half of a 16-molecule batch; DDP's averaged gradient must equal the
    # single-process gradient of the whole batch (deterministic forward: z = mu, no dropout).
    full = torch.arange(16)
    part = full[rank * 8 : (rank + 1) * 8]
    tokens, lengths = data.batch(full)
    width = tokens.size(1)
    mine_tokens, mine_lengths = data.batch(part)
    mine_tokens = torch.nn.functional.pad(mine_tokens, (0, width - mine_tokens.size(1)))
    vae_loss(ddp(mine_tokens, mine_lengths, sample_z=False), mine_tokens, kl_weight=0.5).loss.backward()
    vae_loss(reference(tokens, lengths, sample_z=False), tokens, kl_weight=0.5).loss.backward()
    max_diff = max((a.grad - b.grad).abs().max().item() for a, b in zip(model.parameters(), reference.parameters()))
    model.zero_grad(set_to_none=True)

    result = fit(ddp, vocab, data, data.subset(torch.arange(8)),
                 TrainConfig(epochs=2, batch_size=8, eval_samples=4, eval_reconstruct=4, device="cpu"),
                 max_length=int(data.lengths.max()) + 8, rank=rank, world_size=world)
    checksum = sum(p.double().sum().item() for p in model.parameters())
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "max_grad_diff": max_diff, "checksum": checksum, "epochs": result.epochs_completed,
        "stop_reason": result.stop_reason, "history": len(result.history),
    }))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(2, sys.argv[1]), nprocs=2, join=True)

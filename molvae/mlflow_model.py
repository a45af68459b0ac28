"""MLflow pyfunc model that generates molecules (models-from-code).

MLflow executes this file when the model is loaded; molvae never imports it. The checkpoint
travels as an artifact and is read with our own loader (``weights_only=True``), so no pickled
object is involved::

    model = mlflow.pyfunc.load_model("models:/<model_id>")  # printed by molvae train
    smiles = model.predict(pandas.DataFrame({"n": [100]}), params={"temperature": 1.0, "seed": 0})
"""

import mlflow
import pandas as pd


class MolVAEGenerator(mlflow.pyfunc.PythonModel):
    """``predict`` takes a DataFrame with a column ``n`` (molecules per row, summed) and returns
    that many generated canonical SMILES ("" where a decode is invalid)."""

    def load_context(self, context):
        import torch

        from molvae.checkpoint import load_model

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.loaded = load_model(context.artifacts["checkpoint"], device=device)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        from molvae.sample import sample_prior

        params = params or {}
        n = int(model_input["n"].sum()) if "n" in model_input else len(model_input)
        drawn = sample_prior(
            self.loaded,
            n,
            temperature=float(params.get("temperature", 1.0)),
            top_k=int(params.get("top_k", 0)),
            seed=int(params.get("seed", 0)),
            progress=False,
            canonical=bool(params.get("canonical", True)),
            ring_sizes=self.loaded.ring_sizes if bool(params.get("seen_rings", True)) else None,
        )
        return [s or "" for s in drawn.smiles]


mlflow.models.set_model(MolVAEGenerator())

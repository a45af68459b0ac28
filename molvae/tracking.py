"""Experiment tracking behind a small interface: MLflow (imported lazily) or a no-op."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["MlflowTracker", "NullTracker", "Tracker", "TrackingConfig", "environment_tags", "flatten"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs are recorded."""

    enabled: bool = True  # false = no MLflow at all (the command does not even import it)
    uri: str = ""  # tracking URI; empty = $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = "molvae"  # MLflow experiment name
    run_name: str = ""  # empty = MLflow picks one
    log_model: bool = True  # log the trained model as an MLflow pyfunc that generates molecules
    register: str = ""  # also add the logged model to the model registry under this name (empty = do not)

    def resolved_uri(self) -> str:
        return self.uri or os.environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_TRACKING_URI


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_pyfunc_model(self, checkpoint: str | os.PathLike) -> None: ...
    def log_molecule_grid(self, smiles: list[str], artifact_file: str) -> None: ...
    def log_dataset(self, path: str | os.PathLike, sha256: str, counts: dict[str, int]) -> None: ...
    def link_model(self, checkpoint: str | os.PathLike, meta: dict[str, Any]) -> None: ...


class NullTracker:
    """Records nothing: for tests and for ``tracking.enabled = false``."""

    run_id = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_pyfunc_model(self, checkpoint: str | os.PathLike) -> None:
        pass

    def log_molecule_grid(self, smiles: list[str], artifact_file: str) -> None:
        pass

    def log_dataset(self, path: str | os.PathLike, sha256: str, counts: dict[str, int]) -> None:
        pass

    def link_model(self, checkpoint: str | os.PathLike, meta: dict[str, Any]) -> None:
        pass

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class MlflowTracker:
    """One MLflow run, opened on ``__enter__`` and closed (FINISHED/FAILED/KILLED) on exit.

    ``parent`` nests this run under another tracker's run (optimization: one child per method).
    """

    def __init__(self, config: TrackingConfig, run_name: str | None = None, parent: MlflowTracker | None = None):
        self.config = config
        self.run_name = run_name or config.run_name or None
        self.parent = parent
        self.run_id: str | None = None
        self.model_uri: str | None = None  # the logged model, once log_pyfunc_model ran
        self.model_id: str | None = None
        self._client = None

    def __enter__(self) -> MlflowTracker:
        # imported here: mlflow costs seconds, and commands that do not track never pay it
        from mlflow.tracking import MlflowClient

        uri = self.config.resolved_uri()
        with _store_lock(uri):  # the first use of a store creates or migrates its tables, and the experiment
            self._client = MlflowClient(tracking_uri=uri)
            experiment = self._client.get_experiment_by_name(self.config.experiment)
            experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(self.config.experiment)
        tags = {"mlflow.parentRunId": self.parent.run_id} if self.parent and self.parent.run_id else {}
        run = self._client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self._client.set_terminated(self.run_id, status=status)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k.replace("@", "_at_"), float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        for start in range(0, len(items), 500):
            self._client.log_batch(self.run_id, metrics=items[start : start + 500])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.exists():
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_molecule_grid(self, smiles: list[str], artifact_file: str) -> None:
        """A PNG grid of molecule drawings stored as ``artifact_file`` (e.g. ``epoch_grids/epoch_003.png``)."""
        import tempfile

        from molvae.report import molecule_grid_png

        with tempfile.TemporaryDirectory() as tmp:
            path = molecule_grid_png(smiles, Path(tmp) / Path(artifact_file).name)
            self._client.log_artifact(self.run_id, str(path), str(Path(artifact_file).parent) or None)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_tag(self.run_id, key, str(value))

    def log_dataset(self, path: str | os.PathLike, sha256: str, counts: dict[str, int]) -> None:
        """Record the training file as the run's dataset input: source path, SHA-256 digest, row counts."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        path = Path(path).resolve()
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local file
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(path))
        dataset = MetaDataset(source, name=path.name, digest=sha256[:32])
        tags = [InputTag("mlflow.data.context", "training"), InputTag("sha256", sha256)]
        tags += [InputTag(key, str(value)) for key, value in counts.items()]
        self._client.log_inputs(self.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags)])

    def link_model(self, checkpoint: str | os.PathLike, meta: dict[str, Any]) -> None:
        """Tag this run with the checkpoint it used and the run that trained it; when that run's
        logged model is in this store, record it as a model input of this run."""
        from mlflow.entities import LoggedModelInput
        from mlflow.exceptions import MlflowException

        training_run = meta.get("mlflow_run_id") or ""
        self.set_tags({"molvae.model": str(Path(checkpoint).resolve()), "molvae.model_training_run": training_run})
        if not training_run:
            return
        try:
            experiment = self._client.get_run(training_run).info.experiment_id
        except MlflowException:
            return  # trained against another tracking store
        models = self._client.search_logged_models([experiment], filter_string=f"source_run_id = '{training_run}'")
        if models:
            self._client.log_inputs(self.run_id, models=[LoggedModelInput(models[0].model_id)])

    def log_pyfunc_model(self, checkpoint: str | os.PathLike) -> None:
        """Log the checkpoint as an MLflow 3 logged model (pyfunc, models-from-code) that generates
        SMILES, with an explicit signature and input example; register it when ``config.register``
        names a registered model."""
        import mlflow
        import pandas as pd
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

        import molvae

        package_dir = Path(molvae.__file__).parent
        signature = ModelSignature(
            inputs=Schema([ColSpec("long", "n")]),
            outputs=Schema([ColSpec("string")]),
            params=ParamSchema([ParamSpec("temperature", "double", 1.0), ParamSpec("top_k", "long", 0),
                                ParamSpec("seed", "long", 0), ParamSpec("canonical", "boolean", True),
                                ParamSpec("seen_rings", "boolean", True)]),
        )
        mlflow.set_tracking_uri(self.config.resolved_uri())
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(package_dir / "mlflow_model.py"),
                artifacts={"checkpoint": str(checkpoint)},
                code_paths=[str(package_dir)],
                signature=signature,
                input_example=pd.DataFrame({"n": [2]}),
                pip_requirements=["torch", "rdkit", "selfies", "pandas", "tqdm", f"mlflow=={mlflow.__version__}"],
                registered_model_name=self.config.register or None,
            )
        self.model_uri, self.model_id = info.model_uri, info.model_id


@contextlib.contextmanager
def _store_lock(uri: str):
    """Hold an exclusive lock beside a local SQLite store while the caller first opens it. Two
    commands started at once on a new store otherwise both create its tables, and the second fails
    in the middle of the migration; two creating one experiment, likewise."""
    path = uri.removeprefix("sqlite:///")
    if path == uri or path.startswith(":memory:") or os.name != "posix":
        yield
        return
    import fcntl

    lock = Path(path).with_name(f".{Path(path).name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys.

    >>> flatten({"train": {"epochs": 3}, "seed": 1})
    {'train.epochs': 3, 'seed': 1}
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def environment_tags() -> dict[str, str]:
    """Versions of the libraries that shape results, and the git commit if there is one."""
    import rdkit
    import selfies
    import torch

    from molvae import __version__

    tags = {
        "molvae.version": __version__,
        "torch.version": str(torch.__version__),
        "rdkit.version": rdkit.__version__,
        "selfies.version": selfies.__version__,
        "python.version": platform.python_version(),
        "cuda.available": str(torch.cuda.is_available()),
    }
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent)
        if commit.returncode == 0:
            tags["mlflow.source.git.commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return tags

"""MLflow: a run written to a temporary SQLite store and read back; lazy import."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from molvae.experiment import train_run
from molvae.tracking import MlflowTracker

from .conftest import MOLECULES_CSV, tiny_config


def test_training_run_is_recorded_and_model_predicts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow may write helper files next to the store
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_config(tmp_path, "tracking.enabled=true", f'tracking.uri="{uri}"', 'tracking.experiment="test"',
                         'tracking.register="molvae-test"')
    with MlflowTracker(config.tracking, run_name="tiny") as tracker:
        train_run(MOLECULES_CSV, config, tmp_path / "run", tracker=tracker)

    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    params = run.data.params
    assert params["train.epochs"] == "2" and params["model.latent_dim"] == "8"
    assert len(params["data.sha256"]) == 64 and params["model.vocab_size"].isdigit()
    metrics = run.data.metrics
    for key in ("data_rows_in", "data_rows_kept", "val_loss", "active_units", "val_exact_reconstruction",
                "sample_validity", "final_validity", "final_novelty", "train_molecules_per_second"):
        assert key in metrics, key
    assert metrics["data_rows_in"] == 64
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
    tags = run.data.tags
    assert {"torch.version", "rdkit.version", "selfies.version"} <= set(tags)

    for key in ("sample_fcd", "sample_sa", "sample_qed", "sample_filters"):  # generation quality per epoch
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.csv", "samples.png", "samples.sdf", "loss_curves.png", "history.csv", "metrics.json",
            "config.toml", "checkpoint", "data", "epoch_grids"} <= artifacts
    grids = {a.path for a in client.list_artifacts(run.info.run_id, "epoch_grids")}
    assert grids == {"epoch_grids/epoch_001.png", "epoch_grids/epoch_002.png"}

    # the training data as a dataset input: source, digest, counts
    (dataset_input,) = run.inputs.dataset_inputs
    import hashlib

    sha256 = hashlib.sha256(MOLECULES_CSV.read_bytes()).hexdigest()
    assert dataset_input.dataset.digest == sha256[:32] and MOLECULES_CSV.name in dataset_input.dataset.source
    input_tags = {t.key: t.value for t in dataset_input.tags}
    assert input_tags["sha256"] == sha256 and input_tags["rows_in"] == "64"
    assert input_tags["mlflow.data.context"] == "training"

    # an MLflow 3 logged model with an explicit signature, registered under the configured name
    assert tracker.model_uri and tracker.model_id
    info = mlflow.models.get_model_info(tracker.model_uri)
    assert info.signature.inputs.input_names() == ["n"]
    assert {p.name for p in info.signature.params} == {"temperature", "top_k", "seed", "canonical", "seen_rings"}
    (version,) = client.search_model_versions("name='molvae-test'")
    assert int(version.version) == 1 and version.run_id == run.info.run_id
    data_files = {a.path for a in client.list_artifacts(run.info.run_id, "data")}
    assert {"data/vocab.json", "data/rejected.csv", "data/data_report.json"} <= data_files

    model = mlflow.pyfunc.load_model(tracker.model_uri)
    smiles = model.predict(pd.DataFrame({"n": [7]}), params={"seed": 1})
    assert len(smiles) == 7 and all(isinstance(s, str) for s in smiles)
    again = model.predict(pd.DataFrame({"n": [7]}), params={"seed": 1})
    assert again == smiles  # seeded generation is reproducible

    # a later run (e.g. molvae optimize) that uses the checkpoint is linked to the logged model
    from molvae.checkpoint import load_model

    checkpoint = tmp_path / "run" / "model.pt"
    assert load_model(checkpoint).meta["mlflow_run_id"] == run.info.run_id
    with MlflowTracker(config.tracking, run_name="user") as user:
        user.link_model(checkpoint, load_model(checkpoint).meta)
    linked = client.get_run(user.run_id)
    assert linked.data.tags["molvae.model_training_run"] == run.info.run_id
    assert [m.model_id for m in linked.inputs.model_inputs] == [tracker.model_id]


def test_commands_without_tracking_do_not_import_mlflow():
    code = (
        "import sys; from molvae.cli import main; "
        "main(['evaluate', sys.argv[1]]); "
        "assert 'mlflow' not in sys.modules, 'mlflow imported'"
    )
    result = subprocess.run([sys.executable, "-c", code, str(MOLECULES_CSV)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "validity" in result.stdout


def test_two_commands_opening_a_new_store_at_once_both_record_their_run(tmp_path):
    # both would create the tables of the new SQLite store (and the experiment) at the same time
    code = (
        "import sys; from molvae.tracking import MlflowTracker, TrackingConfig; "
        "config = TrackingConfig(uri=sys.argv[1], experiment='race'); "
        "tracker = MlflowTracker(config, run_name=sys.argv[2]).__enter__(); "
        "tracker.log_metrics({'x': 1.0}); tracker.__exit__(None, None, None)"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = [subprocess.Popen([sys.executable, "-c", code, uri, name], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
            for name in ("first", "second")]
    for run in runs:
        assert run.wait(timeout=180) == 0, run.communicate()[1]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "race"]
    names = sorted(r.info.run_name for r in client.search_runs([experiment.experiment_id]))
    assert names == ["first", "second"]

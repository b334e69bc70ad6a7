"""The experiment trackers on a real run: TensorBoard (named run, HPARAMS row), MLflow's local store and a
W&B offline run, each read back and compared with the run's metrics.json; a missing extra's message."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from pytorch_lightning.utilities.imports import RequirementCache

from tests.conftest import FAST, run_script
from tests.test_training import SHORT
from vae_zoo.cli import build_trainer
from vae_zoo.errors import ConfigError

mlflow = pytest.importorskip("mlflow", reason='needs the mlflow extra: pip install -e ".[dev]"')
wandb_internal_pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason="needs the wandb extra")
NAME = "gumbel_vae,categorical,gumbel_softmax,elbo,bernoulli,mnist,max_epochs=1,log_every_n_steps=1,eval_batch_size=100,lr=0.0003,seed=1"


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, data_dir):
    """``python train.py logger=[tensorboard,mlflow,wandb] model=gumbel_vae ...``: one short real run."""
    root = tmp_path_factory.mktemp("trackers")
    result = run_script(
        "train.py",
        "logger=[tensorboard,mlflow,wandb]",
        "model=gumbel_vae",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={root}",
        f"hydra.run.dir={root / 'run'}",
        *SHORT,
        *FAST,
        "model.optimizer.lr=0.0003",
        "seed=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads((root / "run" / "metrics.json").read_text())


def test_tensorboard_names_the_run_and_shows_it_as_one_hparams_row(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    root, metrics = tracked_run
    (run,) = (root / "run" / "tensorboard").iterdir()
    assert run.name == NAME
    events = EventAccumulator(str(run)).Reload()
    contents = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    row = contents["_hparams_/session_start_info"].session_start_info.hparams
    columns = {key: value.ListFields()[0][1] for key, value in row.items()}
    assert columns["model"] == "gumbel_vae" and columns["estimator"] == "gumbel_softmax"
    assert columns["model.optimizer.lr"] == pytest.approx(3e-4) and columns["seed"] == 1
    assert columns["trainer.max_epochs"] == 1 and "paths.log_dir" not in columns
    metric_tags = {info.name.tag for info in contents["_hparams_/experiment"].experiment.metric_infos}
    assert {"final/val/elbo", "final/test/elbo", "final/test/nll_iw"} <= metric_tags
    for tag in metric_tags:  # each column's value is the scalar the tab reads: metrics.json's number
        (event,) = events.Scalars(tag)
        assert event.value == pytest.approx(metrics[tag.removeprefix("final/")], rel=1e-6), tag


def test_mlflow_store_holds_the_metrics_config_and_image_grids(tracked_run):
    root, metrics = tracked_run
    client = mlflow.tracking.MlflowClient(f"sqlite:///{root}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("vae_zoo").experiment_id])
    assert run.info.run_name == NAME and run.info.status == "FINISHED"
    for name in ("val/elbo", "test/elbo", "test/nll_iw", "test/kl"):
        assert run.data.metrics[name] == pytest.approx(metrics[name], rel=1e-6), name
    assert run.data.params["seed"] == "1" and run.data.params["model/optimizer/lr"] == "0.0003"
    assert run.data.params["model/latent/_target_"] == "vae_zoo.latents.CategoricalLatent"
    for grid in ("images/samples", "images/reconstructions"):
        (artifact,) = client.list_artifacts(run.info.run_id, grid)
        assert artifact.path.endswith(".png") and artifact.file_size > 100


def wandb_records(path: Path):
    """The records of a W&B ``.wandb`` file: a 7-byte header, then LevelDB-log blocks of 32 KiB whose
    chunks (7-byte header: checksum, length, type 1 full / 2 first / 3 middle / 4 last) hold protobufs."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def test_wandb_offline_run_holds_the_metrics_config_and_image_grids(tracked_run):
    root, metrics = tracked_run
    (offline,) = (root / "run" / "wandb").glob("offline-run-*")
    records = list(wandb_records(next(offline.glob("run-*.wandb"))))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == NAME
    config = {
        u.key: json.loads(u.value_json) for r in records if r.HasField("config") for u in r.config.update
    }
    assert config["seed"] == 1 and config["model"]["optimizer"]["lr"] == 0.0003
    logged = {
        item.key or "/".join(item.nested_key): json.loads(item.value_json)
        for r in records
        if r.HasField("history")
        for item in r.history.item
    }
    for name in ("test/elbo", "test/nll_iw", "test/kl"):
        assert logged[name] == pytest.approx(metrics[name], rel=1e-6), name
    images = {p.name.split("_")[0] for p in (offline / "files" / "media" / "images" / "images").iterdir()}
    assert images == {"reconstructions", "samples"}


def test_a_tracker_without_its_package_stops_with_the_install_line(make_cfg, monkeypatch):
    monkeypatch.setattr("pytorch_lightning.loggers.wandb._WANDB_AVAILABLE", RequirementCache("wandb>=999"))
    with pytest.raises(ConfigError) as error:
        build_trainer(make_cfg("logger=[tensorboard,wandb]", *FAST))
    assert str(error.value) == (
        'logger=wandb needs its package, which is not installed: pip install "vae_zoo[wandb]" '
        '(in a clone: pip install -e ".[wandb]")'
    )

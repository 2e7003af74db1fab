"""`[tracking] report_to`: every metrics.jsonl line also goes to TensorBoard and Weights & Biases under the same names,
a killed and resumed run is one curve in each, and a tracker failing mid-run does not stop training. W&B runs
offline here (no network): its run is read back from the records it writes under the run's folder."""

from __future__ import annotations

import json
import logging
import re
import struct
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorboard", reason="the track extra (tensorboard)")
pytest.importorskip("wandb", reason="the track extra (wandb)")


def _metrics(out: Path) -> dict[int, dict[str, float]]:
    """metrics.jsonl's numbers by step (training, validation lines of one step merged), as trackers get them."""
    from worldpolicy.train.tracking import scalars

    steps: dict[int, dict[str, float]] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        entry = json.loads(line)
        steps.setdefault(entry["step"], {}).update(scalars(entry))
    return steps


def _tensorboard(out: Path) -> dict[int, dict[str, float]]:
    """What TensorBoard shows of the run: every scalar of every session's event file, by step (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    steps: dict[int, dict[str, float]] = {}
    for tag in events.Tags()["scalars"]:
        points = events.Scalars(tag)
        assert len({p.step for p in points}) == len(points), tag  # one point a step: no curve logged twice
        for point in points:
            steps.setdefault(point.step, {})[tag] = point.value
    return steps


def _wandb_records(path: Path):
    """The records of an offline W&B run file (`run-ID.wandb`: a LevelDB-style log of 32 KiB blocks after a 7-byte
    header, each record a `wandb_internal_pb2.Record`), in order."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item) -> str:
    """An item's name: W&B writes it as `key`, or as `nested_key` (a path of one name here)."""
    return item.key or "/".join(item.nested_key)


def _wandb(out: Path) -> tuple[set[str], dict[int, dict[str, float]], dict[str, object]]:
    """The offline W&B sessions of the run: their run ids, the history by `step` (a later session's point at a step
    replaces an earlier one's, as the x-axis `step` draws them), and the config last sent."""
    ids, history, config = set(), {}, {}
    for path in sorted((out / "wandb").glob("offline-run-*/run-*.wandb")):
        for record in _wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
            elif kind == "config":
                config.update({_key(u): json.loads(u.value_json) for u in record.config.update})
            elif kind == "history":
                point = {_key(u): json.loads(u.value_json) for u in record.history.item
                         if not _key(u).startswith("_")}
                step = point.pop("step")
                history[step] = {**history.get(step, {}), **point}
    return ids, history, config


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, train_config):
    """A run reporting to both trackers with held-out validation, killed after step 3 (checkpoint: step 2) and
    resumed to step 6."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    out = tmp_path_factory.mktemp("tracking") / "run"
    raw = train_config(out, validation={"episodes": [1], "every": 3, "windows": 2, "action_chunks": 0},
                       tracking={"report_to": ["tensorboard", "wandb"], "wandb_mode": "offline"})
    Trainer(load_config(raw), progress=False).run(stop_after=3)
    killed = _tensorboard(out)
    first_id = json.loads((out / "wandb_run.json").read_text())["id"]
    Trainer(load_config(raw), progress=False).run()
    return {"out": out, "killed": killed, "first_id": first_id}


def test_tensorboard_holds_the_metrics_file_and_a_resume_continues_its_curves(resumed):
    out = resumed["out"]
    logged = _metrics(out)
    assert sorted(logged) == [0, 1, 2, 3, 4, 5, 6]  # step 0: the starting weights' validation
    assert {"loss", "lr", "grad_norm", "loss_video", "step_s", "elapsed_s", "val/loss"} <= set().union(*logged.values())
    shown = _tensorboard(out)
    assert shown.keys() == logged.keys()
    for step, values in logged.items():
        assert shown[step] == pytest.approx(values, rel=1e-6), step  # stored as float32
    # the killed session had logged step 3 too (other elapsed_s): purged, not a second point
    assert 3 in resumed["killed"] and resumed["killed"][3]["elapsed_s"] != pytest.approx(shown[3]["elapsed_s"])


def test_wandb_is_one_run_continued_on_resume_with_the_metrics_and_config(resumed):
    out = resumed["out"]
    ids, history, config = _wandb(out)
    assert ids == {resumed["first_id"]} == {json.loads((out / "wandb_run.json").read_text())["id"]}
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2  # two sessions of one run (`wandb sync` uploads)
    logged = _metrics(out)
    assert history.keys() == logged.keys()
    for step, values in logged.items():
        assert history[step] == pytest.approx(values, rel=1e-12), step
    assert config["optim"]["steps"] == 6 and config["tracking"]["report_to"] == ["tensorboard", "wandb"]


def test_a_tracker_failing_mid_run_is_said_once_and_training_goes_on(train_config, tmp_path, monkeypatch, caplog):
    from worldpolicy.train import tracking
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    sent = []

    def flaky(self, step, values):
        sent.append(step)
        if step >= 2:
            raise ConnectionError("network is unreachable")

    monkeypatch.setattr(tracking._TensorBoard, "log", flaky)
    closed = []  # (failed, steps sent by then): the dropped writer is closed when dropped, not left open to the end
    close = tracking._TensorBoard.close
    monkeypatch.setattr(tracking._TensorBoard, "close", lambda self, failed: closed.append((failed, len(sent))) or
                        close(self, failed))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="worldpolicy.train.tracking"):
        records = Trainer(load_config(train_config(out, tracking={"report_to": ["tensorboard"]})),
                          progress=False).run()
    assert [r.step for r in records] == [1, 2, 3, 4, 5, 6]
    assert sent == [1, 2]  # dropped after its failure
    assert closed == [(True, 2)]
    warned = [r.getMessage() for r in caplog.records if r.name == "worldpolicy.train.tracking"]
    assert warned == [("tensorboard stopped receiving metrics at step 2 (ConnectionError: network is unreachable); "
                      "training goes on, and metrics.jsonl keeps every line")]
    assert sorted(_metrics(out)) == [1, 2, 3, 4, 5, 6]


def test_a_wandb_run_that_cannot_start_stops_before_the_weights_load(train_config, tmp_path, monkeypatch):
    import wandb

    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    def init(**kwargs):
        raise wandb.errors.UsageError("api_key not configured (no-tty)")

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("the weights loaded"))
    out = tmp_path / "run"
    trainer = Trainer(load_config(train_config(out, tracking={"report_to": ["tensorboard", "wandb"]})),
                      progress=False)
    with pytest.raises(ValueError) as caught:
        trainer.run()
    assert str(caught.value) == (
        "tracking.report_to names wandb, which could not start a run: api_key not configured (no-tty); log in "
        f"(`wandb login`), or set tracking.wandb_mode = \"offline\" (upload later: `wandb sync {out}/wandb/"
        "offline-run-*`), or drop wandb from tracking.report_to")
    assert not (out / "wandb_run.json").exists()


@pytest.mark.parametrize("tracking, message", [
    ({"report_to": ["tensorbord"]}, ("tracking.report_to=['tensorbord']: unknown tracker 'tensorbord'; accepted: "
                                    "tensorboard, wandb (or none: [])")),
    ({"report_to": "wandb", "wandb_mode": "online"}, None),  # one name, as a list
    ({"report_to": ["wandb", "wandb"]},
     "tracking.report_to=['wandb', 'wandb']: wandb named more than once; name each tracker once"),
    ({"report_to": ["tensorboard"], "wandb_project": "p"},
     "tracking.wandb_project='p' set, but tracking.report_to=['tensorboard'] does not report to wandb"),
    ({"report_to": ["wandb"], "wandb_mode": "offlne"},
     "tracking.wandb_mode='offlne'; accepted: online, offline (or unset: $WANDB_MODE, else online)"),
    ({"report_to": ["tensorboard"], "project": "p"}, "tracking: unknown keys ['project']"),
])
def test_tracking_settings_are_checked_with_the_config(train_config, tmp_path, tracking, message):
    from worldpolicy.train.config import load_config

    raw = train_config(tmp_path / "run", tracking=tracking)
    if message is None:
        assert load_config(raw).tracking.report_to == ["wandb"]
        return
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_config(raw)


def test_a_missing_tracker_package_names_the_extra_before_anything_loads(train_config, tmp_path, monkeypatch):
    from worldpolicy.extras import MissingExtraError
    from worldpolicy.train.config import load_config

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtraError) as caught:
        load_config(train_config(tmp_path / "run", tracking={"report_to": ["wandb"]}))
    assert str(caught.value) == ("tracking.report_to names wandb: wandb is not installed; it comes with the 'track' "
                                 "extra: pip install 'worldpolicy[track]'")
    assert not (tmp_path / "run").exists()


def test_a_missing_tracker_package_is_named_as_the_flag_typed(train_config, tmp_path, capsys, monkeypatch):
    """`--report-to wandb` without the track extra names the flag the user typed, as its other errors do, not a
    `tracking.report_to` their config does not set."""
    from worldpolicy.cli import main

    monkeypatch.setitem(sys.modules, "wandb", None)
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(tmp_path / "run")))
    assert main(["train", str(config), "--report-to", "tensorboard,wandb", "--no-progress"]) == 2
    assert capsys.readouterr().err == ("worldpolicy train: error: --report-to tensorboard,wandb: wandb is not "
                                       "installed; it comes with the 'track' extra: pip install 'worldpolicy[track]'\n")
    assert not (tmp_path / "run").exists()


def test_a_tracker_gets_the_finite_numbers_of_a_line():
    """numpy's numbers are numbers (`errors.is_real`); the step, a bool, a string, None and NaN or inf are no point."""
    import numpy as np

    from worldpolicy.train.tracking import scalars

    line = {"step": 3, "loss": 0.5, "lr": np.float32(0.25), "epoch": np.int64(2), "val/action_mae": None,
            "eval_task": "reach", "resumed": True, "grad_norm": float("nan"), "val/loss": float("inf")}
    got = scalars(line)
    assert got == {"loss": 0.5, "lr": 0.25, "epoch": 2.0} and all(type(v) is float for v in got.values())


def test_trackers_may_change_on_resume():
    from worldpolicy.train.config import TrainConfig, changed_settings

    saved = TrainConfig().to_dict()
    current = TrainConfig().to_dict()
    current["tracking"] = {"report_to": ["wandb"], "wandb_project": "p", "wandb_entity": None, "wandb_mode": None}
    assert changed_settings(saved, current) == []
    del saved["tracking"]  # a run from before the setting
    assert changed_settings(saved, current) == []


def test_report_to_flag_overrides_the_config_and_is_named_in_errors(train_config, tmp_path, capsys):
    from worldpolicy.cli import main

    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(tmp_path / "run", tracking={"report_to": ["tensorboard"]})))
    assert main(["train", str(config), "--report-to", "tensorboard,wandb,mlflow", "--no-progress"]) == 2
    assert ("error: --report-to tensorboard,wandb,mlflow: unknown tracker 'mlflow'; accepted: tensorboard, wandb (or "
            "none: --report-to none)") in capsys.readouterr().err
    assert main(["train", str(config), "--report-to", "tensorboard,", "--no-progress"]) == 2  # a stray comma
    assert "error: --report-to tensorboard,: unknown tracker ''; accepted: " in capsys.readouterr().err
    config.write_text(json.dumps(train_config(tmp_path / "run", tracking={"wandb_project": "p"})))
    assert main(["train", str(config), "--report-to", "tensorboard", "--no-progress"]) == 2
    assert ("error: tracking.wandb_project='p' set, but --report-to tensorboard does not report to wandb: add wandb "
            "to --report-to, or remove them") in capsys.readouterr().err
    config.write_text(json.dumps(train_config(tmp_path / "run", tracking={"report_to": ["tensorboard"]})))
    assert main(["train", str(config), "--report-to", "none", "--steps", "1", "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["tracking"]["report_to"] == []
    assert not (tmp_path / "run" / "tensorboard").exists()

"""What a run leaves in its folder: the checkpoint of an evaluated step survives a failed evaluation, a kill's staging
folders are cleared, a torn last log line does not block the resume, and --out is relative to the working directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def _run(raw, **kwargs):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    return Trainer(load_config(raw), progress=False).run(**kwargs)


def test_the_checkpoint_is_saved_before_the_evaluation(train_config, tmp_path, monkeypatch):
    from worldpolicy.train.trainer import Trainer

    def failing(self, step, metrics_path):
        raise RuntimeError("the simulator failed")

    monkeypatch.setattr(Trainer, "_evaluate", failing)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulator"):
        _run(train_config(out, eval={"every": 2}))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]


def test_a_kill_during_a_save_or_a_log_write_does_not_block_the_resume(train_config, tmp_path, caplog):
    import json
    import logging

    from worldpolicy.fileio import STAGED_KIND, ScratchFolder

    out = tmp_path / "run"
    _run(train_config(out), stop_after=3)
    # what a kill in the middle of `_save` leaves (its hold gone with the process), of a step the resume never saves
    killed = ScratchFolder(out / "checkpoints" / "step-0000005", STAGED_KIND)
    staging = killed.make()
    killed.release()
    (staging / "transformer").mkdir()
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # and in the middle of a log write
    with caplog.at_level(logging.WARNING, logger="worldpolicy.train.trainer"):
        assert [r.step for r in _run(train_config(out))] == [3, 4, 5, 6]
    assert "metrics.jsonl: dropped its torn last line" in caplog.text
    assert not staging.exists() and sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-0000004", "step-0000006"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def _disk_full(kind: str, path: Path) -> Exception:
    """A full disk as the two writers report it: safetensors (the weights, the optimizer) and Python's own files."""
    import errno

    from safetensors import SafetensorError

    if kind == "safetensors":
        return SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("kind", ["safetensors", "python"])
def test_a_full_disk_during_a_save_is_one_line_naming_the_checkpoint_kept(train_config, tmp_path, monkeypatch, capsys,
                                                                          kind):
    """A full disk at a save printed a traceback (safetensors' error is no OSError), and nothing said whether the
    older checkpoints had survived. It is now one line naming the step, the checkpoint kept and how to go on; nothing
    of the failed save is left, and the same command resumes once there is space."""
    import json

    from worldpolicy.cli import main
    from worldpolicy.train.trainer import Trainer

    real = Trainer.export_pipeline

    def full_at_step_4(self, target):
        real(self, target)  # half a checkpoint written, then the disk is full
        if target.name.startswith(".step-0000004."):
            raise _disk_full(kind, target / "transformer" / "diffusion_pytorch_model.safetensors")

    monkeypatch.setattr(Trainer, "export_pipeline", full_at_step_4)
    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(out)))
    assert main(["train", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"worldpolicy train: error: saving step 4 in {str(out)!r} failed (No space left on device); "
                       f"nothing of it was kept and the newest checkpoint, {out / 'checkpoints' / 'step-0000002'}, is "
                       "intact: free space there (or lower keep_checkpoints) and run the same command to resume")
    assert not any("Traceback" in line for line in err)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]  # no staging folder either
    monkeypatch.setattr(Trainer, "export_pipeline", real)
    assert [r.step for r in _run(train_config(out))] == [3, 4, 5, 6]


def test_a_full_disk_while_writing_the_latent_cache_is_one_line_and_the_encoded_windows_are_kept(
        train_config, tmp_path, monkeypatch, capsys):
    """The latent cache of a real dataset is large and is written hours into a run: a full disk there printed
    safetensors' traceback. It is one line saying the encoded windows are kept and how to go on; a rerun continues
    from them."""
    import json

    from worldpolicy.cli import main
    from worldpolicy.engine import sampler
    from worldpolicy.train import data

    real = data.write_json_atomic

    def full_at_the_cache_meta(path, doc):  # the shards went through; the meta that makes them a cache does not fit
        raise _disk_full("json", path)

    monkeypatch.setattr(data, "write_json_atomic", full_at_the_cache_meta)
    cache = tmp_path / "cache"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(tmp_path / "run", data={"cache_dir": str(cache)}, optim={"steps": 1})))
    assert main(["train", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"worldpolicy train: error: writing the latent cache in {str(cache)!r} failed (No space left on "
                       "device): the windows encoded so far are kept there, and the same command continues from them "
                       "once there is room (or data.cache_dir names a disk with room)")
    assert not any("Traceback" in line for line in err)
    [partial] = cache.glob("latents-*.partial")
    assert list(partial.glob("windows-*.safetensors")) and not list(cache.glob("latents-*-v3"))
    monkeypatch.setattr(data, "write_json_atomic", real)
    monkeypatch.setattr(sampler, "encode_latents", lambda *a: pytest.fail("encoded a window again"))
    assert [r.step for r in _run(json.loads(config.read_text()))] == [1]
    assert not partial.exists() and list(cache.glob("latents-*-v3/windows-*.safetensors"))


def test_a_damaged_log_line_is_named(train_config, tmp_path):
    out = tmp_path / "run"
    _run(train_config(out), stop_after=3)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2 is not a metrics line \(JSONDecodeError"):
        _run(train_config(out))


def test_checkpoints_are_readable_like_any_other_output(train_config, tmp_path):
    """Staged in a private mkdtemp folder (0700, and safetensors writes 0600 files), published with mkdir/open modes."""
    import os

    out = tmp_path / "run"
    _run(train_config(out))
    umask = os.umask(0)
    os.umask(umask)
    checkpoint = max((out / "checkpoints").iterdir())
    assert checkpoint.stat().st_mode & 0o777 == 0o777 & ~umask
    for path in checkpoint.rglob("*"):
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, path


def test_an_output_dir_under_a_file_is_refused_with_the_config(train_config, tmp_path):
    """And a data.cache_dir: one that was a file was refused as "not writable (a read-only disk, or no write
    permission)", sending the user after permissions."""
    from worldpolicy.train.config import load_config

    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(ValueError, match=r"output_dir=.*afile' is a file, not a folder; give --out / output_dir a "
                                             r"folder"):
            load_config(train_config(out))
        with pytest.raises(ValueError, match=r"data.cache_dir=.*afile' is a file, not a folder; give data.cache_dir"):
            load_config(train_config(tmp_path / "run", data={"cache_dir": str(out)}))


def test_an_output_dir_that_holds_another_kind_of_thing_is_refused_with_the_config(train_config, tmp_path,
                                                                                    tiny_checkpoint, tiny_dataset):
    """A predict or sim run, a dataset, a checkpoint (or a folder inside one): refused before anything loads."""
    from worldpolicy.train.config import load_config

    predict_run, sim_run = tmp_path / "predict", tmp_path / "sim"
    for folder, name in ((predict_run, "actions.json"), (sim_run, "report.json")):
        folder.mkdir()
        (folder / name).write_text("{}")
    cases = {predict_run: "holds a predict run", sim_run: "holds a sim run", tiny_dataset: "holds a LeRobot dataset",
             tiny_checkpoint: "holds a diffusers checkpoint", tiny_checkpoint / "vae": "is inside"}
    for out, what in cases.items():
        with pytest.raises(ValueError, match=rf"--out / output_dir: '.*' {what} .*choose another --out / output_dir"):
            load_config(train_config(out))
        # a latent cache there too: one in a dataset's folder went with it (a push to the hub uploaded the latents)
        with pytest.raises(ValueError, match=rf"^data.cache_dir: '.*' {what} .*choose another data.cache_dir"):
            load_config(train_config(tmp_path / "run", data={"cache_dir": str(out)}))
    assert [p.name for p in predict_run.iterdir()] == ["actions.json"]
    run = tmp_path / "run"  # a cache folder of no kind, or a training run's own folder, takes a cache
    assert load_config(train_config(run, data={"cache_dir": str(run)})).data.cache_dir == str(run)


def test_a_recipe_refuses_an_out_that_holds_another_kind_of_run(tmp_path):
    from worldpolicy.train.scratch import run_recipe

    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds a sim run \(report.json\), not a from-scratch recipe run"):
        run_recipe("reach-from-scratch", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_recipe_refuses_an_out_another_process_holds_before_any_stage(tmp_path, monkeypatch):
    """Only its train/ was held (Trainer.run): a second recipe on one --out recorded the dataset again over the one the
    first was recording, and replaced its base/, before its training was refused."""
    from worldpolicy.fileio import LOCK_FILE, folder_lock
    from worldpolicy.train import scratch

    monkeypatch.setattr(scratch, "make_dataset", lambda cfg, root: pytest.fail("a stage ran"))
    out = tmp_path / "out"
    with folder_lock(out, "elsewhere"):
        with pytest.raises(ValueError, match=r"^--out / output_dir: .* is in use by another worldpolicy process"):
            scratch.run_recipe("reach-from-scratch", out)
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # nothing of the refused run's


def test_a_recipe_summary_names_a_shipped_recipe_not_this_machines_path(tmp_path, monkeypatch):
    """The summary ships with the installed model: it recorded the absolute path of the package it was trained from."""
    import json
    import shutil

    from worldpolicy.train import config, scratch

    class Stop(Exception):
        pass

    def stop(raw):
        raise Stop

    monkeypatch.setattr(scratch, "make_dataset", lambda cfg, root: {})
    monkeypatch.setattr(config, "read_config", stop)  # after the first stage wrote summary.json
    own = shutil.copy(scratch.recipe_path("reach-from-scratch"), tmp_path / "mine.toml")
    for given, recorded in ((str(scratch.recipe_path("reach-from-scratch")), "reach-from-scratch"),
                            ("reach-from-scratch", "reach-from-scratch"), (own, str(own))):
        out = tmp_path / f"run_{len(list(tmp_path.iterdir()))}"
        with pytest.raises(Stop):
            scratch.run_recipe(given, out)
        assert json.loads((out / "summary.json").read_text())["recipe"] == recorded
    from worldpolicy.models import shipped_model

    shipped = json.loads((shipped_model() / "training_summary.json").read_text())
    assert shipped["recipe"] in scratch.RECIPES


def test_a_recipe_run_records_the_command_that_ran_it(tmp_path, monkeypatch, reach_dataset):
    """`worldpolicy train reach-from-scratch` recorded no command in its training run's record (`extras.run_record`,
    every checkpoint's trainer_state.json), where `worldpolicy train CONFIG` records its own line as typed."""
    import shutil

    from worldpolicy.cli import main
    from worldpolicy.fileio import MODEL_INDEX_FILE
    from worldpolicy.train import scratch, trainer

    class Stop(Exception):
        pass

    seen = []

    def record(config, **kwargs):
        seen.append(kwargs.get("command"))
        raise Stop

    out = tmp_path / "out"
    (out / "base").mkdir(parents=True)  # its base model made: the recipe goes on to train it
    (out / "base" / MODEL_INDEX_FILE).write_text("{}")
    monkeypatch.setattr(scratch, "make_dataset", lambda cfg, root: shutil.copytree(reach_dataset, root) and {})
    monkeypatch.setattr(trainer, "Trainer", record)
    with pytest.raises(Stop):
        main(["train", "reach-from-scratch", "--out", str(out), "--no-progress"])
    assert seen == [f"worldpolicy train reach-from-scratch --out {out} --no-progress"]


def test_a_recipe_refuses_install_into_a_folder_it_cannot_write_before_any_stage(tmp_path, monkeypatch):
    """A pip-installed package's models folder (site-packages, read-only) was found unwritable only at the very end,
    after the whole recipe had trained."""
    from worldpolicy.train import scratch

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(scratch, "_models_folder", lambda: models)
    monkeypatch.setattr(scratch, "make_dataset", lambda cfg, root: pytest.fail("a stage ran"))
    access = os.access  # read-only to this user (root may write anywhere, so chmod alone would not show it)
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == models else access(path, mode))
    with pytest.raises(PermissionError, match=r"--install: '.*models' is not writable .*run without --install"):
        scratch.run_recipe("reach-from-scratch", tmp_path / "out", install=True)
    assert not (tmp_path / "out").exists()


def test_install_model_replaces_the_installed_model_whole_and_leaves_no_staging(tmp_path, monkeypatch):
    """A killed install's staging is removed; a running install's (another recipe's `--install`, which no run lock
    keeps out: each holds its own --out) was removed too, by name, and is now kept until its process lets go."""
    import json
    import types

    from worldpolicy.fileio import STAGED_KIND, ScratchFolder
    from worldpolicy.train import scratch

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(scratch, "resources", types.SimpleNamespace(files=lambda package: models))
    killed = ScratchFolder(models / "panda_reach", STAGED_KIND)
    (killed.make() / "transformer").mkdir()  # what a killed install left: its hold went with its process
    killed.release()
    running = ScratchFolder(models / "panda_reach", STAGED_KIND)
    (running.make() / "transformer").mkdir()  # another install, still copying
    for run in ("first", "second"):
        trained = tmp_path / run
        (trained / "transformer").mkdir(parents=True)
        (trained / "model_index.json").write_text(json.dumps({"run": run}))
        (trained / "transformer" / "weights.bin").write_text(run)
        if run == "first":
            (trained / "only_in_first.txt").write_text("gone with the next install")
        assert scratch.install_model(trained, {"run": run}) == models / "panda_reach"
    installed = models / "panda_reach"
    assert sorted(p.name for p in models.iterdir()) == [running.path.name, "panda_reach"]
    running.release()
    assert sorted(p.name for p in installed.iterdir()) == ["README.md", "model_index.json", "training_summary.json",
                                                           "transformer"]
    assert json.loads((installed / "training_summary.json").read_text()) == {"run": "second"}
    assert (installed / "transformer" / "weights.bin").read_text() == "second"


def test_an_install_killed_while_it_replaced_the_model_is_put_back_not_swept(tmp_path, monkeypatch,
                                                                            killed_replacing):
    """An install killed between its two renames leaves the installed model aside (`.panda_reach.replaced-*`): the
    next install removed every `.panda_reach.*` as a killed staging folder, that one too, and a failure of its own
    then left no model at all. It is now put back first."""
    import json
    import types

    from worldpolicy.train import scratch

    models = tmp_path / "models"
    installed = models / "panda_reach"
    installed.mkdir(parents=True)
    (installed / "model_index.json").write_text(json.dumps({"run": "installed"}))
    killed_replacing(STAGE_NEW_MODEL, 1, str(installed))
    assert not installed.exists()
    monkeypatch.setattr(scratch, "resources", types.SimpleNamespace(files=lambda package: models))

    def failing(*args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr(scratch, "write_model_card", failing)
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "model_index.json").write_text(json.dumps({"run": "new"}))
    with pytest.raises(OSError, match="no space"):
        scratch.install_model(trained, {"run": "new"})
    assert json.loads((installed / "model_index.json").read_text()) == {"run": "installed"}


STAGE_NEW_MODEL = """
from worldpolicy.fileio import staged_folder
with staged_folder(sys.argv[2]) as staging:
    (staging / "model_index.json").write_text("{}")
"""


def test_a_mode_the_run_never_trained_is_warned_about_at_its_first_request(train_config, tmp_path, caplog):
    """`worldpolicy train`'s default objectives are policy alone: such a checkpoint's imagine / infer_actions gave
    futures and actions that looked like any others, with nothing to say the run never trained them."""
    import logging

    import numpy as np
    from train_setup import tiny_observation

    import worldpolicy
    from worldpolicy.policy import PolicyRequest

    def requests(policy):
        obs = tiny_observation(0)
        clip = {k: np.stack([v] * 5) if k.startswith("observation/ext") else v for k, v in obs.items()}
        return {"policy": PolicyRequest(obs, "reach"),
                "forward_dynamics": PolicyRequest(obs, "reach", mode="forward_dynamics", actions=np.zeros((4, 8))),
                "inverse_dynamics": PolicyRequest(clip, "reach", mode="inverse_dynamics")}

    out = tmp_path / "policy_only"
    _run(train_config(out, objectives={"preset": None, "policy": 1.0}, optim={"steps": 2}))
    checkpoint = out / "checkpoints" / "step-0000002"
    policy = worldpolicy.load_policy(checkpoint)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.policy"):
        for mode, request in requests(policy).items():
            caplog.clear()
            policy._prepare(request)
            said = f"checkpoint {checkpoint} was trained with no {mode} objective" in caplog.text
            assert said == (mode != "policy"), (mode, caplog.text)
            if said:
                assert "(its trainer_state.json: policy 1, forward_dynamics 0, inverse_dynamics 0)" in caplog.text
                assert f"train with objectives.{mode} > 0" in caplog.text
            caplog.clear()
            policy._prepare(request)  # once per loaded policy: a loop would repeat it every call
            assert "was trained with no" not in caplog.text
    trained = tmp_path / "all_modes"  # the fixture's cosmos_policy mix trains every mode
    _run(train_config(trained, optim={"steps": 2}))
    policy = worldpolicy.load_policy(trained / "checkpoints" / "step-0000002")
    with caplog.at_level(logging.WARNING, logger="worldpolicy.policy"):
        for request in requests(policy).values():
            policy._prepare(request)
    assert "was trained with no" not in caplog.text


def test_no_progress_means_no_progress_bar_while_the_model_loads(train_config, tmp_path, capsys):
    """`worldpolicy train --no-progress` (`progress=False`) still showed diffusers' "Loading pipeline components" bar."""
    from diffusers.utils import logging as diffusers_logging

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    Trainer(load_config(train_config(tmp_path / "quiet")), progress=False)._load()
    assert "Loading pipeline components" not in capsys.readouterr().err
    assert diffusers_logging.is_progress_bar_enabled()  # and other loads still show theirs


def test_a_training_refuses_an_out_another_process_holds_before_anything_loads(train_config, tmp_path, monkeypatch,
                                                                               capsys):
    """Two trainings on one --out (or a resume of a run still going) interleaved checkpoints and metrics.jsonl."""
    import json

    from worldpolicy.cli import main
    from worldpolicy.fileio import folder_lock
    from worldpolicy.train.trainer import Trainer

    def must_not_run(self, *args, **kwargs):
        raise AssertionError("read or loaded while another process held the folder")

    for name in ("_checkpoints", "_data", "_load"):
        monkeypatch.setattr(Trainer, name, must_not_run)
    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(out)))
    with folder_lock(out, "elsewhere"):
        assert main(["train", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"worldpolicy train: error: --out / output_dir: {str(out)!r} is in use by another "
                          f"worldpolicy process (PID {os.getpid()},")
    assert "wait for that run to finish" in err


def test_training_into_a_log_file_writes_progress_lines_not_a_redrawn_bar(train_config, tmp_path, capsys, monkeypatch):
    """A Slurm job's stderr is a file: tqdm's bar redrew itself there with carriage returns, days of steps in one
    line of megabytes that `tail -f` and `grep` cannot follow, with no wall time to read the log by. Where stderr is
    not a terminal, training now writes a line every `log_every` steps (the time, the step, the loss, the time left
    and when the run should end); on a terminal the bar stays."""
    import re

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer, _duration

    Trainer(load_config(train_config(tmp_path / "log", log_every=2, save_every=100)), progress=True).run()
    err = capsys.readouterr().err
    line = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d training: step (\d)/6 \(\d+%\), loss [0-9.]+(.*)$"
    lines = re.findall(line, err, re.MULTILINE)
    assert [step for step, _ in lines] == ["2", "4", "6"]
    assert all(re.fullmatch(r", \S+ s/step, \d+:\d\d:\d\d left \(ends ~.+\)", rest) for _, rest in lines[:2])
    assert lines[2][1] == "" and "\rtraining" not in err and "step/s" not in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: the bar, no lines
    Trainer(load_config(train_config(tmp_path / "tty", log_every=2, save_every=100)), progress=True).run()
    err = capsys.readouterr().err
    assert "training: step" not in err and re.search(r"training: +100%\|", err)
    assert _duration(3909) == "1:05:09" and _duration(2 * 86400 + 3 * 3600) == "2d 3:00:00"


def test_each_state_of_the_progress_bar_shows_the_loss_of_the_step_it_counts(train_config, tmp_path, monkeypatch):
    """The bar counted a step before it was given its loss: a redraw of the count (tqdm's, at its own rate) said the
    previous step's loss ("3/6 [...] loss=<step 2's>"), as sim's bar said the previous episode's success count."""
    from worldpolicy import logcapture
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    drawn: list[tuple[int, str | None]] = []  # each state a redraw would show: (steps counted, loss shown)

    class Bar:  # draws at every update (tqdm may, at its rate) and at every set_postfix that refreshes
        def __init__(self, total, initial=0, **kwargs):
            self.n, self.loss = initial, None

        def update(self, n=1):
            self.n += n
            drawn.append((self.n, self.loss))

        def set_postfix(self, refresh=True, **postfix):
            self.loss = postfix["loss"]
            if refresh:
                drawn.append((self.n, self.loss))

        def close(self):
            pass

    real = logcapture.progress_bar  # the other bars (the windows encoded) as they are

    def bar(*args, **kwargs):
        return Bar(**kwargs) if kwargs.get("desc") == "training" else real(*args, **kwargs)

    monkeypatch.setattr(logcapture, "progress_bar", bar)
    monkeypatch.setattr(logcapture, "progress_as_lines", lambda stream=None: False)  # the bar, not a log's lines
    records = Trainer(load_config(train_config(tmp_path / "run", save_every=100)), progress=True).run()
    losses = {r.step: f"{r.loss:.4f}" for r in records}
    assert [n for n, _ in drawn][-1] == 6 and all(loss == losses[n] for n, loss in drawn), (drawn, losses)


def test_a_checkpoint_is_on_the_disk_before_the_older_ones_are_rotated_away(train_config, tmp_path, synced_paths):
    """A node lost (power, a kernel crash) just after a save could leave the newest checkpoint renamed into place
    with its files still unwritten, the older ones already deleted by `keep_checkpoints`: nothing to resume from.
    Every file of a checkpoint is now flushed to the disk (fsync) before it takes its name."""
    import re

    synced = synced_paths
    out = tmp_path / "run"
    _run(train_config(out, optim={"steps": 2}))
    final = out / "checkpoints" / "step-0000002"
    staged = {m[1] or "." for path in synced if (m := re.search(r"/\.step-0000002\.staged-[^/]+/?(.*)$", path))}
    written = {str(p.relative_to(final)) for p in final.rglob("*")} | {"."}
    assert written <= staged

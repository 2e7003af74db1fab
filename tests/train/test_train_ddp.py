"""Two gloo processes under torchrun train the same global batch as one process: same losses, same weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("torch.distributed.run", reason="torch without torchrun")

STEPS = 3


def _weights(folder):
    from safetensors.torch import load_file

    out = {}
    for shard in sorted((folder / "transformer").glob("*.safetensors")):
        out.update(load_file(str(shard)))
    return out


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_gloo_processes_match_one_process(tmp_path, train_config, tiny_checkpoint):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    # episode 1 held out and scored at every step: by rank 0 alone, one window per pass (the per-process batch)
    overrides = {"save_every": STEPS, "optim": {"steps": STEPS, "batch_size": 2},
                 "validation": {"episodes": [1], "every": 1, "windows": 3}}
    config_file = tmp_path / "ddp.json"
    # reported to TensorBoard too, by rank 0 alone, where the track extra is installed (the DDP check runs without it)
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    config_file.write_text(json.dumps(train_config(tmp_path / "ddp", **overrides,
                                                   tracking={"report_to": ["tensorboard"] if tensorboard else []})))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "worldpolicy", "train", str(config_file), "--no-progress"],
        check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])  # printed by rank 0 only
    assert summary["steps_run"] == STEPS and np.isfinite(summary["last_loss"])

    logged = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    lines = [line for line in logged if "loss" in line]
    held_out = [line for line in logged if "val/loss" in line]
    assert [line["step"] for line in held_out] == list(range(STEPS + 1))  # once per validation, not once per rank
    assert [line["step"] for line in lines] == list(range(1, STEPS + 1))  # rank 0 logs, once per step
    assert all(line["world_size"] == 2 and np.isfinite(line["loss"]) for line in lines)
    if tensorboard:
        events = list((tmp_path / "ddp" / "tensorboard").glob("events.out.tfevents.*"))
        assert len(events) == 1  # one writer: rank 0's
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        shown = EventAccumulator(str(events[0]))
        shown.Reload()
        assert [(p.step, p.value) for p in shown.Scalars("loss")] == [
            (line["step"], pytest.approx(line["loss"], rel=1e-6)) for line in lines]
    final = tmp_path / "ddp" / "checkpoints" / f"step-{STEPS:07d}"
    assert summary["checkpoint"] == str(final) and (final / "model_index.json").is_file()

    # one process, same global batch: each rank took its slice of the same examples, objectives, σ and noise,
    # so the mean of the two local losses is the one-process batch loss, and averaged gradients give its update
    single = Trainer(load_config(train_config(tmp_path / "single", **overrides)), progress=False).run()
    ddp_losses = np.array([line["loss"] for line in lines])
    single_losses = np.array([r.loss for r in single])
    np.testing.assert_allclose(ddp_losses[0], single_losses[0], rtol=1e-5)
    np.testing.assert_allclose(ddp_losses, single_losses, rtol=1e-4)
    # the same held-out windows, σ and noise, batched otherwise (the noise is drawn pair by pair whatever the batch)
    single_held_out = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()
                       if "val/loss" in line]
    np.testing.assert_allclose([line["val/loss"] for line in held_out],
                               [line["val/loss"] for line in single_held_out], rtol=1e-4)
    ddp_weights = _weights(final)
    single_weights = _weights(tmp_path / "single" / "checkpoints" / f"step-{STEPS:07d}")
    base_weights = _weights(tiny_checkpoint)
    moved = [k for k in base_weights if not torch.equal(base_weights[k], single_weights[k])]
    assert moved  # training changed the weights
    for key in single_weights:
        torch.testing.assert_close(ddp_weights[key], single_weights[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_sigterm_under_torchrun_saves_the_step_every_rank_is_in(tmp_path, train_config):
    """A preempted multi-GPU job: torchrun passes the scheduler's SIGTERM on to its ranks, which each stopped where it
    found them, nothing saved (the others left waiting in a collective until torchrun killed them). The ranks now
    agree after each step whether a signal came, save that step together and stop; the same command resumes there."""
    import signal
    import time

    config_file = tmp_path / "ddp.json"
    out = tmp_path / "ddp"
    config_file.write_text(json.dumps(train_config(out, save_every=100_000, optim={"steps": 100_000})))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "worldpolicy", "train", str(config_file), "--no-progress"]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        metrics = out / "metrics.jsonl"
        while proc.poll() is None and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
            time.sleep(0.2)  # a condition waited for, not a duration: the run has trained a few steps
        proc.send_signal(signal.SIGTERM)  # to torchrun, as the scheduler does: it sends it on to the ranks
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(saved) == 1, err[-5000:]
    step = int(saved[0].removeprefix("step-"))
    assert step >= 3 and [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == list(
        range(1, step + 1))
    assert f"terminated (SIGTERM) after step {step}: saved" in err and "SIGTERM: finishing the step every rank is in" in err
    config_file.write_text(json.dumps(train_config(out, save_every=100_000, optim={"steps": step + 2})))
    resumed = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0 and f"resumed from {out / 'checkpoints' / saved[0]} (step {step})" in resumed.stderr


def _agreed(monkeypatch, per_rank: list[tuple[list[int], bool]]) -> list[tuple[list[int], bool]]:
    """What `_agreed_interruption` returns on each rank, given what each caught and whether its clock said a save is
    due: its all-reduce (MAX) run over the numbers the ranks put in, without torch.distributed."""
    from types import SimpleNamespace

    from worldpolicy.train.trainer import Trainer

    rank = SimpleNamespace(device="cpu")
    sent = []

    def gather(tensor, op):
        assert op == torch.distributed.ReduceOp.MAX
        sent.append(tensor.clone())

    monkeypatch.setattr(torch.distributed, "all_reduce", gather)
    for caught, timed in per_rank:
        Trainer._agreed_interruption(rank, caught, timed)
    reduced = torch.stack(sent).max(0).values
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor, op: tensor.copy_(reduced))
    return [Trainer._agreed_interruption(rank, caught, timed) for caught, timed in per_rank]


def _stops(monkeypatch, per_rank: list[list[int]]) -> list[list[int]]:
    """The signal each rank stops on (`_agreed`), no save due by the clock."""
    return [stop for stop, _ in _agreed(monkeypatch, [(caught, False) for caught in per_rank])]


def test_ranks_stop_on_the_most_urgent_signal_any_caught_by_its_order_not_its_number(monkeypatch):
    """SIGTERM (the end is now) before SIGUSR1 (Slurm's warning of it) before Ctrl-C, every rank the same. The choice
    was the highest signal number, which holds on Linux only: on macOS SIGUSR1 is 30, above SIGTERM's 15."""
    import signal

    from worldpolicy.train import trainer

    term, usr1, ctrl_c = signal.SIGTERM, signal.SIGUSR1, signal.SIGINT
    assert _stops(monkeypatch, [[ctrl_c], [usr1], []]) == [[usr1]] * 3
    assert _stops(monkeypatch, [[usr1], [ctrl_c, term]]) == [[term]] * 2
    assert _stops(monkeypatch, [[], []]) == [[], []]
    monkeypatch.setattr(trainer, "STOP_PRIORITY", (15, 30, 2), raising=False)  # macOS's numbers
    assert _stops(monkeypatch, [[30], [15]]) == [[15], [15]]


def test_a_save_one_ranks_clock_says_is_due_is_every_ranks(monkeypatch):
    """`checkpoint_every_minutes` is judged on each rank's own clock, which may pass the mark a step before another's:
    a save is a collective (a sharded one gathers the weights), so a rank saving alone would leave the others waiting.
    The ranks agree, in the step's one all-reduce, and every rank saves with the first."""
    import signal

    assert _agreed(monkeypatch, [([], False), ([], True), ([], False)]) == [([], True)] * 3
    assert _agreed(monkeypatch, [([], False), ([], False)]) == [([], False)] * 2
    assert _agreed(monkeypatch, [([signal.SIGTERM], False), ([], True)]) == [([signal.SIGTERM], True)] * 2


@pytest.mark.parametrize("device, backend", [("cpu", "gloo"), (None, "nccl"), ("cuda", "nccl")])
def test_the_process_group_is_the_one_the_training_device_needs(monkeypatch, device, backend):
    """`device = "cpu"` under torchrun on a GPU machine joined an NCCL group, which takes CUDA tensors only: every
    all-reduce of the CPU run failed. The backend follows the device the run trains on, not the machine."""
    from worldpolicy.train.trainer import _distributed

    joined = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", joined.append)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert _distributed(device) == (1, 2) and joined == [backend]

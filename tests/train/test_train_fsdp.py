"""FSDP2 over two gloo processes (`optim.data_parallel = "fsdp"`): the same losses, held-out losses, weights and
optimizer state as one process, checkpoints in the same files, and a killed run resumed from them goes on exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP")
gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                          reason="torch.distributed with gloo is not available")

STEPS = 4
SHARD_SIZE = 1_000_000  # bytes a checkpoint's safetensors file holds at most: the tiny model's 2.4 MB make 3 files
WORKER = Path(__file__).with_name("fsdp_run.py")


def _torchrun(config: dict, folder: Path, stop_after: int | None = None, shard_size: int | None = None
             ) -> list[list[float]]:
    """Train `config` in two gloo processes (checkpoint files split at `shard_size` bytes); rank 0's (step, loss,
    grad_norm) records."""
    proc = _launch(config, folder, stop_after, shard_size)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.split("RECORDS ", 1)[1].splitlines()[0])


def _launch(config: dict, folder: Path, stop_after: int | None = None, shard_size: int | None = None
            ) -> subprocess.CompletedProcess:
    """`fsdp_run.py` on `config` in two gloo processes, run in `folder`: the finished process, output captured."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "config_in.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    if shard_size is not None:
        env["MAX_SHARD_SIZE"] = str(shard_size)
    extra = [str(stop_after)] if stop_after is not None else []
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
         str(config_file), *extra], check=False, env=env, cwd=folder, capture_output=True, text=True, timeout=300)


def _files(folder: Path, pattern: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(folder.glob(pattern)):
        out.update(load_file(str(path)))
    return out


def _validations(run: Path) -> list[dict]:
    return [line for line in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val/loss" in line]


def _checkpoint(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:07d}"


@pytest.fixture(scope="module")  # three two-process runs and one of one process: ~70 s on the 2-core dev machine
def runs(tmp_path_factory, train_config):
    """Checkpoint files split at SHARD_SIZE: a sharded run writes them a file at a time, and reads them back."""
    from worldpolicy import fileio
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("fsdp")
    overrides = {"save_every": 2, "optim": {"steps": STEPS, "batch_size": 2, "data_parallel": "fsdp"}}
    unbroken = _torchrun(train_config(root / "fsdp", **overrides), root / "fsdp", shard_size=SHARD_SIZE)
    # killed after step 3 (its last checkpoint: step 2), resumed with activations recomputed (the same gradients)
    killed = _torchrun(train_config(root / "killed", **overrides), root / "killed", stop_after=3, shard_size=SHARD_SIZE)
    resumed = _torchrun(train_config(root / "killed", **{**overrides, "optim": {
        **overrides["optim"], "gradient_checkpointing": True}}), root / "killed", shard_size=SHARD_SIZE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fileio, "MAX_SHARD_SIZE", SHARD_SIZE)
        single = Trainer(load_config(train_config(root / "single", **{**overrides, "optim": {
            "steps": STEPS, "batch_size": 2}})), progress=False).run()
    return {"root": root, "unbroken": unbroken, "killed": killed, "resumed": resumed,
            "single": [[r.step, r.loss, r.parts["grad_norm"]] for r in single]}


@pytest.mark.slow
@gloo
def test_two_sharded_processes_match_one_process(runs):
    """Each rank holds half of every weight; gathered, the step is the one process's (fp32, to float rounding)."""
    unbroken, single = np.array(runs["unbroken"]), np.array(runs["single"])
    assert unbroken[:, 0].tolist() == list(range(1, STEPS + 1))
    np.testing.assert_allclose(unbroken[:, 1:], single[:, 1:], rtol=1e-5)
    root = runs["root"]
    # the same files (diffusers' sharded form: shards and their index, the AdamW state's alike), keys and shapes
    sharded, whole = (_checkpoint(root / name, STEPS) for name in ("fsdp", "single"))
    for index in ("transformer/diffusion_pytorch_model.safetensors.index.json", "optimizer.safetensors.index.json"):
        assert json.loads((sharded / index).read_text()) == json.loads((whole / index).read_text())
        assert len(set(json.loads((sharded / index).read_text())["weight_map"].values())) > 1
    names = [sorted(p.name for p in folder.rglob("*.safetensors")) for folder in (sharded, whole)]
    assert names[0] == names[1]
    assert (sharded / "transformer/config.json").read_text() == (whole / "transformer/config.json").read_text()
    for pattern in ("transformer/*.safetensors", "optimizer*.safetensors"):
        sharded, whole = (_files(_checkpoint(root / name, STEPS), pattern) for name in ("fsdp", "single"))
        assert sorted(sharded) == sorted(whole)
        for key in whole:
            torch.testing.assert_close(sharded[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
@gloo
def test_only_rank_0_reads_the_weights(runs, tiny_checkpoint):
    """A new run: rank 0 alone reads the starting transformer's weights (the other builds the structure on the meta
    device and takes its shard from rank 0). A resume: rank 0 alone reads the checkpoint, and not the starting weights.
    That the shards are right, the first step's loss says (`test_two_sharded_processes_match_one_process`)."""
    root, start = runs["root"], str(tiny_checkpoint / "transformer") + os.sep

    def opened(run: str, rank: int, under: str) -> list[str]:
        return [p for p in json.loads((root / run / f"opened-rank{rank}.json").read_text()) if p.startswith(under)]

    assert opened("fsdp", 0, start) and not opened("fsdp", 1, start)
    saved = str(root / "killed" / "checkpoints") + os.sep
    assert opened("killed", 0, saved) and not opened("killed", 0, start)  # the resume's record
    assert not opened("killed", 1, saved) and not opened("killed", 1, start)


@pytest.mark.slow
@gloo
def test_sharded_checkpoint_is_the_pipeline_folder_with_no_pickle(runs):
    final = _checkpoint(runs["root"] / "fsdp", STEPS)
    assert (final / "model_index.json").is_file() and (final / "trainer_state.json").is_file()
    assert not [p for p in final.rglob("*") if p.suffix in (".metadata", ".pt", ".pth", ".bin", ".pkl")]
    from worldpolicy.engine.loading import load_components

    transformer = load_components(str(final), torch.device("cpu"), torch.float32)["transformer"]
    saved = _files(final, "transformer/*.safetensors")
    for name, value in transformer.state_dict().items():
        assert torch.equal(value, saved[name]), name


@pytest.mark.slow
@gloo
def test_killed_sharded_run_resumes_exactly(runs):
    """Rank 0 reads the checkpoint, every process takes its shard: steps 3.. are the unbroken run's."""
    killed, resumed, unbroken = runs["killed"], runs["resumed"], runs["unbroken"]
    assert [r[0] for r in killed] == [1, 2, 3] and [r[0] for r in resumed] == [3, 4]
    assert killed == unbroken[:3]
    np.testing.assert_allclose(np.array(resumed)[:, 1:], np.array(unbroken[2:])[:, 1:], rtol=1e-6)
    root = runs["root"]
    for pattern in ("transformer/*.safetensors", "optimizer*.safetensors"):
        after, whole = (_files(_checkpoint(root / name, STEPS), pattern) for name in ("killed", "fsdp"))
        assert sorted(after) == sorted(whole)  # no AdamW state for weights no step trained (lm_head: none)
        for key in whole:
            torch.testing.assert_close(after[key], whole[key], rtol=1e-6, atol=1e-7, msg=key)
    # split into the same files: the resume set the AdamW state in its file's order (`10.` before `2.`), which a save
    # does not follow
    for index in ("transformer/diffusion_pytorch_model.safetensors.index.json", "optimizer.safetensors.index.json"):
        after, whole = (json.loads((_checkpoint(root / name, STEPS) / index).read_text())
                        for name in ("killed", "fsdp"))
        assert after == whole, index


@pytest.mark.slow
@gloo
def test_a_resume_from_a_truncated_optimizer_file_is_refused_on_every_rank(runs, train_config):
    """An AdamW state file cut short (a partial copy) is found from its header before any file is read and said on
    every rank, naming it (rank 0 reads the files; the others would wait for their shards of it)."""
    import shutil

    root = runs["root"]
    run = root / "truncated"
    shutil.copytree(root / "fsdp", run)
    checkpoint = _checkpoint(run, STEPS)
    last = max(checkpoint.glob("optimizer-*.safetensors"))
    last.write_bytes(last.read_bytes()[:-100])
    config = train_config(run, save_every=2, optim={"steps": STEPS + 1, "batch_size": 2, "data_parallel": "fsdp"})
    proc = _launch(config, run)
    assert proc.returncode != 0 and "RECORDS" not in proc.stdout
    said = f"checkpoint {checkpoint}: {last.name} is unreadable (SafetensorError: "
    for rank in (0, 1):
        assert f"[rank{rank}]: ValueError: {said}" in proc.stderr, proc.stderr[-5000:]


@pytest.mark.slow
@gloo
def test_a_resume_from_weights_not_this_models_is_refused_on_every_rank(runs, train_config):
    """A checkpoint whose weights files do not hold the model's weights (one renamed here: the files of another model,
    or edited) is refused from the files' headers before any is read, naming the file, what is missing and what is
    unknown, on every rank (rank 0 reads them; the others would wait for their shards)."""
    import shutil

    from safetensors.torch import load_file, save_file

    root = runs["root"]
    run = root / "renamed"
    shutil.copytree(root / "fsdp", run)
    weights = _checkpoint(run, STEPS) / "transformer"
    first = min(weights.glob("*.safetensors"))
    tensors = load_file(str(first))
    renamed = min(tensors)
    tensors[f"{renamed}_old"] = tensors.pop(renamed)
    save_file(tensors, str(first), metadata={"format": "pt"})
    config = train_config(run, save_every=2, optim={"steps": STEPS + 1, "batch_size": 2, "data_parallel": "fsdp"})
    proc = _launch(config, run)
    assert proc.returncode != 0 and "RECORDS" not in proc.stdout
    said = (f"checkpoint {weights}: diffusion_pytorch_model.safetensors does not hold this model's weights (missing "
            f"[{renamed!r}], unknown [{renamed + '_old'!r}])")
    for rank in (0, 1):  # both raise at once, as rank 0 shares what it found before either reads a tensor
        assert f"[rank{rank}]: ValueError: {said}" in proc.stderr, proc.stderr[-5000:]


@pytest.fixture(scope="module")  # two two-process runs and one of one process: ~35 s on the 2-core dev machine
def validated(tmp_path_factory, train_config):
    """Held-out validation of a sharded run: one session validating every 3 steps stopped after step 2 (checkpoint: step
    2, validated: step 0), resumed validating every step (step 2's is then due, and not logged), against one process
    validating every step. 3 held-out windows under the 3 objectives: 9 pairs in rounds of 4, so one rank has none in
    the last round. 5 sampled chunks in batches of 2 (the per-process batch): 3 batches, so one rank samples a batch of
    one padded to two and the other samples a batch again, its result dropped."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("fsdp_validation")
    validation = {"episodes": [1], "windows": 3, "action_chunks": 5, "action_steps": 2}
    optim = {"steps": 3, "batch_size": 4, "data_parallel": "fsdp"}
    _torchrun(train_config(root / "sharded", optim=optim, validation={**validation, "every": 3}), root / "sharded",
              stop_after=2)
    _torchrun(train_config(root / "sharded", optim=optim, validation={**validation, "every": 1}), root / "sharded")
    Trainer(load_config(train_config(root / "single", optim={**optim, "data_parallel": "ddp"},
                                     validation={**validation, "every": 1})), progress=False).run()
    return root


@pytest.mark.slow
@gloo
def test_sharded_validation_is_one_process_validation(validated):
    """Every rank scores its share of the held-out windows with the sharded model, with the draws one process gives
    them (the first forward at step 0, before any training step); rank 0 logs the all-reduced figures: one process's
    (fp32, to float rounding). A resume that turns validation on scores its checkpoint's step on every rank."""
    sharded, whole = _validations(validated / "sharded"), _validations(validated / "single")
    assert [line["step"] for line in sharded] == [0, 2, 3] and [line["step"] for line in whole] == [0, 1, 2, 3]
    for mine, one in zip(sharded, [whole[0], *whole[2:]]):
        assert sorted(mine) == sorted(one) and mine["val/windows"] == one["val/windows"] == 3
        for key in one:
            np.testing.assert_allclose(mine[key], one[key], rtol=1e-6, err_msg=f"step {one['step']}: {key}")


@pytest.mark.slow
@gloo
def test_a_sharded_mixtures_held_out_action_error_per_source_is_one_processes(train_config, tiny_dataset,
                                                                             tmp_path):
    """A mixture's held-out action error (`val/action_mae/source_<i>`, the weighted headline, each column's) sampled
    by both ranks of a sharded run, source by source, is one process's."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    def config(out, parallel):
        raw = train_config(out, optim={"steps": 1, "batch_size": 4, "data_parallel": parallel},
                           validation={"every": 1, "windows": 2, "action_chunks": 3, "action_steps": 2})
        raw["data"] = {k: v for k, v in raw["data"].items() if k != "dataset"}
        raw["data"]["mixture"] = [{"dataset": str(tiny_dataset), "weight": 1, "validation_episodes": [1]},
                                  {"dataset": str(tiny_dataset), "weight": 3, "validation_episodes": [0]}]
        return raw

    _torchrun(config(tmp_path / "sharded", "fsdp"), tmp_path / "sharded")
    Trainer(load_config(config(tmp_path / "single", "ddp")), progress=False).run()
    sharded, whole = _validations(tmp_path / "sharded"), _validations(tmp_path / "single")
    assert [line["step"] for line in sharded] == [line["step"] for line in whole] == [0, 1]
    for mine, one in zip(sharded, whole):
        assert sorted(mine) == sorted(one) and {"val/action_mae/source_0", "val/action_mae/source_1"} <= set(one)
        assert one["val/action_chunks"] == 6
        for key in one:
            np.testing.assert_allclose(mine[key], one[key], rtol=1e-6, err_msg=f"step {one['step']}: {key}")


def test_each_block_weight_is_in_one_tower_group(tiny_checkpoint):
    """FSDP gathers a block tower's group when one of `tower_modules`' modules runs: every weight of a block must be
    in exactly one of them, or it would stay in the root group, gathered for the whole step."""
    from worldpolicy.engine.forward import tower_modules
    from worldpolicy.engine.loading import load_components

    transformer = load_components(str(tiny_checkpoint), torch.device("cpu"), torch.float32)["transformer"]
    for layer in transformer.layers:
        grouped = [id(p) for modules in tower_modules(layer) for module in modules for p in module.parameters()]
        assert sorted(grouped) == sorted(id(p) for p in layer.parameters())


def test_one_process_has_nothing_to_shard_and_says_so(train_config, tmp_path, caplog):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    with caplog.at_level("WARNING"):
        trainer = Trainer(load_config(train_config(tmp_path / "one", optim={"data_parallel": "fsdp"})), progress=False)
    assert not trainer.sharded and "shards nothing: it holds the whole model" in caplog.text


def test_a_torch_without_fsdp2_is_refused_naming_the_setting(monkeypatch):
    """torch 2.4 and 2.5 (the package's floor) have no `torch.distributed.fsdp.fully_shard`: said before any loading."""
    from worldpolicy.train.trainer import _refuse_without_fsdp2

    monkeypatch.setitem(sys.modules, "torch.distributed.fsdp", None)  # as an import of a missing module
    with pytest.raises(ValueError, match=r"optim.data_parallel='fsdp' needs FSDP2 .*use optim.data_parallel = \"ddp\""):
        _refuse_without_fsdp2()

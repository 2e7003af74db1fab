"""The from-scratch recipe's own pieces: action-head initialisation and the VAE's training clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from train_setup import CHUNK, TINY_EMBODIMENT, VIDEO_KEYS


def _tiny_transformer():
    from diffusers import Cosmos3OmniTransformer

    torch.manual_seed(0)
    return Cosmos3OmniTransformer(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        head_dim=32, rope_axes_dim=[8, 4, 4], latent_channel=16, latent_patch_size=2, patch_latent_dim=64,
        action_gen=True, action_dim=16, num_embodiment_domains=4, vocab_size=64,
    )


def test_action_heads_are_initialised_like_linear_layers():
    from worldpolicy.train.scratch import init_action_heads

    transformer = _tiny_transformer()
    # diffusers' own init (an nn.Embedding table, N(0, 1)): the reason the recipe re-initialises
    assert transformer.action_proj_out.fc.weight.std().item() > 0.5
    init_action_heads(transformer)
    for projection in (transformer.action_proj_in, transformer.action_proj_out):
        bound = 1 / math.sqrt(projection.input_size)
        weight = projection.fc.weight
        assert weight.abs().max().item() <= bound
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)  # uniform(-b, b) has std b/√3
        assert torch.count_nonzero(projection.bias.weight) == 0
    # unit-scale inputs give unit-scale outputs, per domain
    x = torch.randn(256, 16)
    out = transformer.action_proj_out(transformer.action_proj_in(x, torch.zeros(256, dtype=torch.long)),
                                      torch.zeros(256, dtype=torch.long))
    assert 0.05 < out.std().item() < 2.0


def test_vae_clips_come_from_the_chosen_episodes_only(tiny_dataset, monkeypatch):
    from worldpolicy.embodiments import register_embodiment
    from worldpolicy.train import data
    from worldpolicy.train.data import WindowSpec, iter_windows
    from worldpolicy.train.scratch import _clips

    emb = register_embodiment({**TINY_EMBODIMENT, "name": "tiny_panda_clips", "domain": "tiny_panda_clips",
                               "domain_id": 29, "chunk_size": CHUNK}, overwrite=True)
    spec = WindowSpec(str(tiny_dataset), CHUNK, video_keys=tuple(VIDEO_KEYS))
    decoded: list = []
    monkeypatch.setattr(data, "iter_windows", lambda s, e: decoded.append(s.episodes) or iter_windows(s, e))
    one = _clips(spec, emb, count=1, seed=0)
    assert len(decoded[-1]) == 1  # one clip wanted: one of the two episodes is read, not the whole dataset
    assert one.shape[:3] == (1, 3, CHUNK + 1) and one.dtype == torch.float16
    both = _clips(spec, emb, count=5, seed=0)
    assert both.shape[0] == 5
    assert _clips(spec, emb, count=5, seed=0).equal(both)  # seeded
    # more clips than windows: every window once
    everything = _clips(spec, emb, count=1000, seed=0)
    assert everything.shape[0] == sum(1 for _ in iter_windows(spec, emb))
    assert np.isfinite(everything.float().numpy()).all()


def test_an_interrupted_recording_is_recorded_again_not_trained_on(tiny_dataset, tmp_path, monkeypatch):
    """Ctrl-C keeps the finished episodes as a dataset; the recipe's rerun must not train on that part. A whole one is
    reused only if this worldpolicy's task and expert, with the recipe's settings, recorded it."""
    import json
    import shutil

    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    from worldpolicy.data import from_sim
    from worldpolicy.train.scratch import ScratchConfig, make_dataset

    class Recorded(Exception):
        pass

    calls = []

    def record(*args, **kwargs):
        calls.append(args)
        raise Recorded

    root = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, root)  # 2 episodes, made elsewhere: no provenance
    monkeypatch.setattr(from_sim, "sim_to_dataset", record)
    cfg = ScratchConfig(episodes=2)
    with pytest.raises(ValueError, match=r"was recorded by other versions: .*scripted expert: v1 \(unrecorded\)"):
        make_dataset(cfg, root)  # reused as the recipe's data before: whichever expert recorded it
    info = json.loads((root / "meta/info.json").read_text())
    info["worldpolicy_provenance"] = from_sim.expert_episodes(
        cfg.task, 1, seed=cfg.seed, task_options=cfg.task_options, cameras=cfg.cameras, start_jitter=cfg.start_jitter,
        settle_steps=cfg.settle_steps, action_noise=cfg.action_noise).provenance
    (root / "meta/info.json").write_text(json.dumps(info))
    assert make_dataset(cfg, root) == {"reused": str(root)} and calls == []
    with pytest.raises(ValueError, match="other settings: start_jitter: 0.5 -> 0.25"):
        make_dataset(ScratchConfig(episodes=2, start_jitter=0.25), root)
    with pytest.raises(Recorded):
        make_dataset(ScratchConfig(episodes=5), root)
    assert calls == [(root, "reach", 5)]


def test_a_damaged_run_record_is_named_not_a_bare_json_error(tmp_path):
    """The shipped model's record comes from the run's last checkpoint: a damaged trainer_state.json there is named
    (`fileio.read_trainer_state`, the one reader of it), not a JSONDecodeError that says no file."""
    from worldpolicy.train.scratch import model_record

    with pytest.raises(ValueError, match=r"run='.*' holds no saved checkpoint \(checkpoints/step-\*\)"):
        model_record(tmp_path)
    last = tmp_path / "checkpoints" / "step-0000002"
    last.mkdir(parents=True)
    (last / "model_index.json").write_text("{}")  # a checkpoint (`fileio.is_checkpoint`)
    (tmp_path / "checkpoints" / "step-0000003").mkdir()  # newer, but no checkpoint: passed by
    (last / "trainer_state.json").write_text('{"step": 2, "conf')
    with pytest.raises(ValueError, match=r"trainer_state\.json '.*step-0000002/trainer_state\.json' is not valid JSON"):
        model_record(tmp_path)
    (last / "trainer_state.json").write_text("[2]")
    with pytest.raises(ValueError, match="a JSON list, not an object"):
        model_record(tmp_path)


def test_a_scheduler_signal_in_the_recipe_s_recording_exits_with_its_own_status(tmp_path, monkeypatch, capsys):
    """`train reach-from-scratch` stopped by SIGUSR1 (Slurm's warning) or SIGTERM while recording its dataset: the
    recording's `RecordingInterrupted` reached the command line, which took any wrapper for Ctrl-C (exit 130,
    "interrupted"), so a job script that requeues on 138 or 143 gave the run up. The wrapper says its signal."""
    import signal

    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    from worldpolicy.cli import main
    from worldpolicy.data import from_sim
    from worldpolicy.fileio import Terminated
    from worldpolicy.train.scratch import recipe_path

    recipe = recipe_path("reach-from-scratch").read_text()
    (small := tmp_path / "recipe.toml").write_text(recipe.replace("episodes = 900", "episodes = 2")
                                                   .replace("workers = 2", "workers = 1"))
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        def record(self, seed: int, signum=signum):  # as the command line raises it (`terminating_as_interrupt`)
            raise Terminated(signum)

        monkeypatch.setattr(from_sim._Recorder, "record", record)
        assert main(["train", str(small), "--out", str(tmp_path / "run"), "--no-progress"]) == 128 + signum
        assert f"terminated ({signum.name})" in capsys.readouterr().err

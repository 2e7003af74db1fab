"""Memory options for large models: gradient checkpointing (the same gradients, fewer kept activations) and bf16
autocast (Cosmos Policy's precision; fp32 weights, gradients and optimizer state)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldpolicy.train.flow import batch_losses


def _losses_and_grads(trainer, recompute: bool, saved: list[int] | None = None):
    transformer = trainer.transformer
    transformer.zero_grad(set_to_none=True)
    examples = trainer.examples[:3]
    objectives = ["policy", "forward_dynamics", "inverse_dynamics"]

    def keep(tensor):  # bytes the forward keeps for the backward pass
        if saved is not None:
            saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        terms = batch_losses(transformer, examples, objectives, [0.3, 0.6, 0.9], torch.Generator().manual_seed(0),
                             recompute=recompute)
    loss = sum(t for pair in terms for t in pair if t is not None)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in transformer.named_parameters() if p.grad is not None}
    transformer.zero_grad(set_to_none=True)
    return float(loss.detach()), grads


def test_gradient_checkpointing_gives_the_same_gradients_for_fewer_kept_activations(loaded_trainer):
    kept_plain, kept_recompute = [], []
    loss, grads = _losses_and_grads(loaded_trainer, recompute=False, saved=kept_plain)
    loss_r, grads_r = _losses_and_grads(loaded_trainer, recompute=True, saved=kept_recompute)
    assert loss_r == loss and grads_r.keys() == grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grads_r[name], grad, rtol=1e-6, atol=1e-9, msg=name)
    assert sum(kept_recompute) < 0.6 * sum(kept_plain), (sum(kept_recompute), sum(kept_plain))


def test_bf16_trains_close_to_fp32_and_keeps_fp32_weights(train_config, tmp_path):
    from safetensors import safe_open

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    runs = {}
    for precision in ("fp32", "bf16"):
        raw = train_config(tmp_path / precision, optim={"steps": 3, "batch_size": 2, "precision": precision},
                           save_every=3)
        trainer = Trainer(load_config(raw), progress=False)
        runs[precision] = (trainer, np.array([r.loss for r in trainer.run()]))
    (trainer, bf16), (_, fp32) = runs["bf16"], runs["fp32"]
    assert np.isfinite(bf16).all() and not np.array_equal(bf16, fp32)  # autocast ran: the numbers moved...
    np.testing.assert_allclose(bf16, fp32, rtol=5e-2)  # ...by bf16 rounding, not more
    assert {p.dtype for p in trainer.transformer.parameters()} == {torch.float32}
    assert {v.dtype for state in trainer.optimizer.state.values() for v in state.values() if v.dim()} == {torch.float32}
    weights = trainer._checkpoints()[-1] / "transformer" / "diffusion_pytorch_model.safetensors"
    with safe_open(str(weights), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    saved = json.loads((trainer._checkpoints()[-1] / "trainer_state.json").read_text())
    assert saved["config"]["optim"]["precision"] == "bf16"


def test_precision_is_checked_and_resume_may_switch_only_checkpointing(train_config, tmp_path):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    with pytest.raises(ValueError, match=r"optim.precision='fp16'; accepted: fp32, bf16"):
        load_config(train_config(tmp_path / "x", optim={"precision": "fp16"}))
    base = {"steps": 2, "batch_size": 2}
    Trainer(load_config(train_config(tmp_path / "run", optim=base, save_every=2)), progress=False).run()
    more = {**base, "steps": 3, "gradient_checkpointing": True}
    records = Trainer(load_config(train_config(tmp_path / "run", optim=more, save_every=2)), progress=False).run()
    assert [r.step for r in records] == [3] and np.isfinite(records[0].loss)
    switched = {**more, "steps": 4, "precision": "bf16"}
    with pytest.raises(ValueError, match=r"optim.precision: 'fp32' -> 'bf16'"):
        Trainer(load_config(train_config(tmp_path / "run", optim=switched, save_every=2)), progress=False).run()


def test_gradient_checkpointing_takes_a_boolean(train_config, tmp_path):
    from worldpolicy.train.config import load_config

    with pytest.raises(ValueError, match=r"optim.gradient_checkpointing='yes': expected true or false, got str"):
        load_config(train_config(tmp_path / "x", optim={"gradient_checkpointing": "yes"}))
    with pytest.raises(ValueError, match=r"optim.gradient_checkpointing=1: expected true or false, got int"):
        load_config(train_config(tmp_path / "x", optim={"gradient_checkpointing": 1}))


LORA = {"mode": "lora", "lora_rank": 4, "lora_alpha": 8.0}


@pytest.fixture(scope="module")
def bf16_lora(train_config, tmp_path_factory):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    pytest.importorskip("peft", reason="LoRA needs peft (the train extra)")
    root = tmp_path_factory.mktemp("bf16_lora")

    def make(out, precision="bf16", **optim):
        raw = train_config(root / out, finetune=LORA, save_every=1,
                           optim={"steps": 3, "batch_size": 2, "precision": precision, **optim})
        return Trainer(load_config(raw), progress=False)

    full = make("a")
    records = full.run()
    killed = make("b").run(stop_after=2)
    resumed = make("b").run()
    fp32 = make("fp32", precision="fp32").run()
    return {"root": root, "trainer": full, "records": records, "killed": killed, "resumed": resumed, "fp32": fp32}


def test_bf16_lora_keeps_frozen_weights_in_bf16_and_trains_close_to_fp32(bf16_lora):
    trainer = bf16_lora["trainer"]
    dtypes = {n: p.dtype for n, p in trainer.transformer.named_parameters()}
    trainable = {n for n, p in trainer.transformer.named_parameters() if p.requires_grad}
    assert trainable and all(dtypes[n] == torch.float32 for n in trainable)
    assert {dtypes[n] for n in dtypes if n not in trainable and not n.startswith("time_embedder.")} == {torch.bfloat16}
    assert {dtypes[n] for n in dtypes if n.startswith("time_embedder.")} == {torch.float32}
    bf16, fp32 = (np.array([r.loss for r in bf16_lora[k]]) for k in ("records", "fp32"))
    assert np.isfinite(bf16).all() and not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, rtol=5e-2)
    assert [r.loss for r in bf16_lora["killed"] + bf16_lora["resumed"]] == [r.loss for r in bf16_lora["records"]]


def test_bf16_lora_merges_in_fp32(bf16_lora):
    """The saved weight is the bf16 base plus the LoRA update computed in fp32: merging in bf16 would round away
    most of a small update."""
    from safetensors.torch import load_file

    trainer = bf16_lora["trainer"]
    ckpt = trainer._checkpoints()[-1]
    saved = load_file(str(ckpt / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in saved.values()} == {torch.float32}
    module = trainer.transformer.layers[0].self_attn.add_q_proj
    base = module.base_layer.weight
    assert base.dtype == torch.bfloat16  # the live weights were restored after the merge
    update = (module.lora_B["default"].weight @ module.lora_A["default"].weight) * LORA["lora_alpha"] / LORA["lora_rank"]
    expected = base.float() + update.detach()
    torch.testing.assert_close(saved["layers.0.self_attn.add_q_proj.weight"], expected, rtol=1e-6, atol=1e-7)
    assert (expected - base.float()).abs().max() > 0


def test_bf16_lora_evaluation_samples_under_autocast(bf16_lora, monkeypatch):
    """The periodic evaluation runs the live mixed-precision weights (bf16 base, fp32 adapters and heads)."""
    pytest.importorskip("mujoco", reason="evaluation runs the simulator (the sim extra)")
    import worldpolicy.sim.evaluate as sim_evaluate

    trainer = bf16_lora["trainer"]
    seen = {}

    def first_chunk_only(env, policy, **kwargs):  # one policy call is enough to exercise the sampler
        observation, _ = env.reset(seed=kwargs["seed"])
        seen["chunk"] = policy.act(observation, "reach the ball").actions
        return type("Report", (), {"success_rate": 0.0})()

    monkeypatch.setattr(sim_evaluate, "evaluate", first_chunk_only)
    trainer.config.eval.episodes = 1
    trainer._evaluate(3, bf16_lora["root"] / "metrics.jsonl")
    assert seen["chunk"].shape == (4, 8) and np.isfinite(seen["chunk"]).all()


def test_a_run_stored_before_precision_existed_is_fp32_on_resume():
    from dataclasses import asdict

    from worldpolicy.train.config import DataConfig, ObjectiveConfig, changed_settings

    old_run = {"optim": {"lr": 1e-3}}  # what a run from before optim.precision stored
    added = ("episodes", "exclude_episodes", "success")
    prefix = ("action_prefix_probability", "action_prefix_max_rows")
    data = {"data": {k: v for k, v in asdict(DataConfig(dataset="d")).items() if k in added},
            "validation": {"episodes": []},
            "objectives": {k: v for k, v in asdict(ObjectiveConfig()).items() if k in prefix},
            "augment": {"enabled": False}}  # the settings added
    # since, as a current run stores them
    assert changed_settings(old_run, {"optim": {"lr": 1e-3, "precision": "bf16"}, **data}) == [
        "optim.precision: 'fp32' -> 'bf16'"]
    assert changed_settings(old_run, {"optim": {"lr": 1e-3, "precision": "fp32"}, **data}) == []


def test_bf16_forward_runs_without_the_autocast_weight_cache(loaded_trainer, monkeypatch):
    """The cast cache would keep every layer's bf16 weight copy alive until the forward ends, undoing what gradient
    checkpointing saves."""
    import worldpolicy.train.trainer as trainer_module

    seen = []
    real = trainer_module.batch_losses

    def spy(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled()))
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "batch_losses", spy)
    module = trainer_module.FlowMatchingLoss(loaded_trainer.transformer, 1.0, 1000, "bf16", recompute=True)
    module(loaded_trainer.examples[:2], ["policy", "inverse_dynamics"], torch.tensor([0.4, 0.7]),
           torch.Generator().manual_seed(0))
    assert seen == [(True, False)]

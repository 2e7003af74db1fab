"""LoRA fine-tuning trains only the adapters and the action head, resumes exactly, and exports a merged diffusers
checkpoint (W + α/r·B·A) that `Policy` loads, or an adapter-only checkpoint that loads onto its base as the same
model."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from train_setup import tiny_observation

pytest.importorskip("peft", reason="LoRA needs peft (the train extra)")

RANK, ALPHA = 4, 8.0
TARGETS = ["add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


def _weights(folder):
    from safetensors.torch import load_file

    out = {}
    for shard in sorted((folder / "transformer").glob("*.safetensors")):
        out.update(load_file(str(shard)))
    return out


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory, train_config):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("lora")
    overrides = {"save_every": 1, "finetune": {"mode": "lora", "lora_rank": RANK, "lora_alpha": ALPHA},
                 "optim": {"steps": 3, "batch_size": 2}}
    full = Trainer(load_config(train_config(root / "a", **overrides)), progress=False)
    records = full.run()
    killed = Trainer(load_config(train_config(root / "b", **overrides)), progress=False).run(stop_after=2)
    resumed = Trainer(load_config(train_config(root / "b", **overrides)), progress=False).run()
    adapter = {**overrides, "finetune": {**overrides["finetune"], "lora_save": "adapter"}}
    adapter_killed = Trainer(load_config(train_config(root / "c", **adapter)), progress=False).run(stop_after=2)
    adapter_resumed = Trainer(load_config(train_config(root / "c", **adapter)), progress=False).run()
    # fine-tuned again from that adapter checkpoint, as adapters: a chain of two adapters on the tiny base
    chained = {**adapter, "optim": {"steps": 1, "batch_size": 2}}
    chain = train_config(root / "d", **chained)
    chain["checkpoint"] = str(root / "c" / "checkpoints" / "step-0000003")
    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("worldpolicy.train.trainer").addHandler(handler)
    try:
        Trainer(load_config(chain), progress=False).run()
    finally:
        logging.getLogger("worldpolicy.train.trainer").removeHandler(handler)
    return {"root": root, "trainer": full, "records": records, "killed": killed, "resumed": resumed,
            "adapter_records": adapter_killed + adapter_resumed, "chain_warnings": warnings}


def test_lora_trains_only_adapters_and_the_action_head(lora_runs):
    trainer = lora_runs["trainer"]
    trainable = [n for n, p in trainer.transformer.named_parameters() if p.requires_grad]
    total = sum(1 for _ in trainer.transformer.parameters())
    lora = [n for n in trainable if ".lora_" in n]
    head = [n for n in trainable if n.startswith(("action_proj_in.", "action_proj_out."))]
    assert sorted(lora + head) == sorted(trainable) and lora and head
    layers = trainer.transformer.config.num_hidden_layers
    assert len(lora) == 2 * len(TARGETS) * layers  # lora_A and lora_B of every target in every layer
    assert {n.split(".")[3] for n in lora} == set(TARGETS)
    assert len(trainable) < total / 3
    assert [id(p) for p in trainer.params] == [id(p) for n, p in trainer.transformer.named_parameters()
                                                 if p.requires_grad]
    assert len(lora_runs["records"]) == 3 and all(np.isfinite(r.loss) for r in lora_runs["records"])


def test_saving_a_lora_checkpoint_prints_no_spurious_dtype_warning(lora_runs, tmp_path):
    """diffusers' `save_lora_adapter` calls `.to(dtype=None)`, a no-op that logs "modules ... should be kept in
    float32. Casting directly with `to()` can lead to inconsistent results" at every LoRA checkpoint: users read it
    as a problem with their weights, though nothing was cast."""
    trainer = lora_runs["trainer"]
    dtypes = {n: p.dtype for n, p in trainer.transformer.named_parameters()}
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    diffusers_logger = logging.getLogger("diffusers")  # its own handler, bound to the stderr of its import
    diffusers_logger.addHandler(handler)
    out, trainer.out = trainer.out, tmp_path  # not into the run's folder: its checkpoints would rotate
    try:
        saved = trainer._save(99, [])
    finally:
        trainer.out = out
        diffusers_logger.removeHandler(handler)
    assert (saved / "adapter.safetensors").is_file()
    assert not [m for m in messages if "kept in float32" in m]
    assert {n: p.dtype for n, p in trainer.transformer.named_parameters()} == dtypes  # and indeed nothing was cast


def test_lora_resume_is_exact(lora_runs):
    records, killed, resumed = lora_runs["records"], lora_runs["killed"], lora_runs["resumed"]
    assert [r.step for r in resumed] == [3]
    assert [r.loss for r in killed + resumed] == [r.loss for r in records]
    a = _weights(lora_runs["root"] / "a" / "checkpoints" / "step-0000003")
    b = _weights(lora_runs["root"] / "b" / "checkpoints" / "step-0000003")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lora_export_is_a_merged_pipeline(lora_runs, tiny_checkpoint):
    from safetensors.torch import load_file

    from worldpolicy import Policy

    ckpt = lora_runs["root"] / "a" / "checkpoints" / "step-0000003"
    merged, base = _weights(ckpt), _weights(tiny_checkpoint)
    assert merged.keys() == base.keys()  # plain Cosmos3 weights: no lora_ / base_layer keys
    adapter = load_file(str(ckpt / "adapter.safetensors"))
    changed = set()
    for layer in range(lora_runs["trainer"].transformer.config.num_hidden_layers):
        for target in TARGETS:
            prefix = f"layers.{layer}.self_attn.{target}"
            a, b = adapter[f"{prefix}.lora_A.weight"], adapter[f"{prefix}.lora_B.weight"]
            assert b.abs().max() > 0  # lora_B starts at zero: training moved it
            torch.testing.assert_close(merged[f"{prefix}.weight"], base[f"{prefix}.weight"] + ALPHA / RANK * b @ a,
                                       rtol=1e-5, atol=1e-6)
            assert not torch.equal(merged[f"{prefix}.weight"], base[f"{prefix}.weight"])
            changed.add(f"{prefix}.weight")
    head = {k for k in merged if k.startswith(("action_proj_in.", "action_proj_out."))}
    assert head and all(not torch.equal(merged[k], base[k]) for k in head)
    frozen = set(merged) - changed - head
    assert {"embed_tokens.weight", "layers.0.self_attn.to_q.weight"} <= frozen
    assert all(torch.equal(merged[k], base[k]) for k in frozen)

    # diffusers' own loader reads the adapter with its rank and alpha (from the file's metadata) and reproduces the
    # merged attention weights; the fully trained action heads live in the merged weights only
    from diffusers import Cosmos3OmniTransformer

    reloaded = Cosmos3OmniTransformer.from_pretrained(tiny_checkpoint, subfolder="transformer")
    reloaded.load_lora_adapter(str(ckpt), weight_name="adapter.safetensors", adapter_name="run", prefix=None)
    assert (reloaded.peft_config["run"].r, reloaded.peft_config["run"].lora_alpha) == (RANK, ALPHA)
    reloaded.fuse_lora(adapter_names=["run"])
    fused = {k.replace(".base_layer", ""): v for k, v in reloaded.state_dict().items() if ".lora_" not in k}
    for key in changed:
        torch.testing.assert_close(fused[key], merged[key], rtol=1e-5, atol=1e-6)

    spec = json.loads((ckpt / "embodiment.json").read_text())
    policy = Policy.from_pretrained(ckpt, device="cpu", steps=2, seed=0)
    assert policy.embodiment.name == spec["name"]
    obs = tiny_observation(1)
    prediction = policy.act(obs, "move the gripper to the blue ball")
    assert prediction.actions.shape == (4, 8) and np.all(np.isfinite(prediction.actions))


def test_unknown_lora_targets_are_refused_before_the_latent_cache(train_config, tmp_path):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run", finetune={"mode": "lora", "lora_targets": ["add_q_proj", "q_projj"]})
    with pytest.raises(ValueError, match=r"finetune.lora_targets \['q_projj'\] name no module .* linear layers: .*add_q_proj"):
        Trainer(load_config(raw), progress=False).run()
    assert not (tmp_path / "run" / "cache").exists()


def test_a_lora_target_that_is_no_layer_is_refused_before_the_latent_cache(train_config, tmp_path):
    """A norm or a block's name ("mlp") passed the name check and peft refused it only after the latents were
    encoded (hours, on a real dataset)."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    for target, kind in (("norm_added_q", "RMSNorm"), ("mlp", "Cosmos3VLTextMLP")):
        raw = train_config(tmp_path / "run", finetune={"mode": "lora", "lora_targets": ["add_q_proj", target]})
        with pytest.raises(ValueError, match=rf"finetune.lora_targets: '{target}' names {kind} modules, which LoRA "
                                             r"cannot adapt .* linear layers: .*add_q_proj"):
            Trainer(load_config(raw), progress=False).run()
        assert not (tmp_path / "run" / "cache").exists()


def test_a_lora_target_may_be_the_end_of_a_dotted_module_path(train_config, tmp_path):
    """peft matches "self_attn.add_q_proj" against every layer's; the check took only a name's last part and refused
    it."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run", finetune={"mode": "lora", "lora_targets": ["self_attn.add_q_proj"]},
                       optim={"steps": 1})
    trainer = Trainer(load_config(raw), progress=False)
    trainer.run()
    adapted = {name.split(".lora_")[0] for name, _ in trainer.transformer.named_parameters() if ".lora_" in name}
    assert adapted and all(name.endswith("self_attn.add_q_proj") for name in adapted)


def _transformer_weights(policy):
    return {k: v.detach().clone() for k, v in policy.engine.transformer.state_dict().items()}


def test_an_adapter_checkpoint_is_small_resumes_exactly_and_loads_as_the_merged_model(lora_runs, tiny_checkpoint):
    from worldpolicy import Policy

    merged = lora_runs["root"] / "a" / "checkpoints" / "step-0000003"
    adapter = lora_runs["root"] / "c" / "checkpoints" / "step-0000003"
    # resumed from an adapter checkpoint at step 2, the run computes the losses of the uninterrupted merged-saving run
    assert [r.loss for r in lora_runs["adapter_records"]] == [r.loss for r in lora_runs["records"]]
    names = {p.name for p in adapter.iterdir()}
    assert names == {"adapter.safetensors", "trained.safetensors", "base_model.json", "embodiment.json",
                     "optimizer.safetensors", "trainer_state.json", "README.md"}
    base = json.loads((adapter / "base_model.json").read_text())
    assert base["base_model_name_or_path"] == str(tiny_checkpoint)
    from safetensors.torch import load_file

    # no frozen weight is copied: the adapters and the fully trained action heads only
    trained = load_file(str(adapter / "trained.safetensors"))
    assert set(trained) == {n for n in _weights(merged) if n.startswith(("action_proj_in.", "action_proj_out."))}
    assert all(".lora_" in n for n in load_file(str(adapter / "adapter.safetensors")))
    size = sum(p.stat().st_size for p in adapter.iterdir() if p.name != "optimizer.safetensors")
    assert size < sum(p.stat().st_size for p in (merged / "transformer").iterdir()) / 2

    from_merged = Policy.from_pretrained(merged, device="cpu", steps=2, seed=0)
    from_adapter = Policy.from_pretrained(adapter, device="cpu", steps=2, seed=0)
    assert from_adapter.embodiment == from_merged.embodiment
    a, b = _transformer_weights(from_merged), _transformer_weights(from_adapter)
    assert a.keys() == b.keys()  # no peft wrappers left: the plain Cosmos3 transformer
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    obs = tiny_observation(2)
    np.testing.assert_allclose(from_adapter.act(obs, "reach the ball").actions,
                               from_merged.act(obs, "reach the ball").actions, atol=1e-5)

    # in bf16 the base W is rounded as it loads and again with the update fused (W' = W + α/r·B·A); the merged
    # checkpoint's W' is rounded once: they agree to bf16's unit roundoff u = 2^-8, u·(|W| + 2|W'|)
    half_merged = _transformer_weights(Policy.from_pretrained(merged, device="cpu", dtype="bfloat16"))
    half_adapter = _transformer_weights(Policy.from_pretrained(adapter, device="cpu", dtype="bfloat16"))
    base = _weights(tiny_checkpoint)
    differ = 0
    for key, value in half_merged.items():
        assert half_adapter[key].dtype == value.dtype
        bound = 2 ** -8 * (base[key].abs() + 2 * a[key].abs())
        assert torch.all((half_adapter[key].float() - value.float()).abs() <= bound), key
        differ += not torch.equal(half_adapter[key], value)
    assert differ == 2 * len(TARGETS)  # the fused attention projections of both layers; everything else is equal


def test_an_adapter_checkpoint_refuses_a_missing_or_changed_base(lora_runs, tiny_checkpoint, tmp_path, monkeypatch):
    import shutil

    from safetensors.torch import load_file, save_file

    from worldpolicy import Policy

    adapter = tmp_path / "adapter"
    shutil.copytree(lora_runs["root"] / "c" / "checkpoints" / "step-0000003", adapter)
    base_file = adapter / "base_model.json"
    info = json.loads(base_file.read_text())

    base_file.write_text(json.dumps({**info, "base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(FileNotFoundError, match=r"LoRA adapter on the base .*gone.* cannot be found .*base_model_name_or_path"):
        Policy.check_pretrained(adapter)
    from worldpolicy.agents.toolbox import Toolbox, ToolboxConfig

    listed = Toolbox(ToolboxConfig(output_dir=tmp_path / "mcp", checkpoint_dirs=[tmp_path])).list_checkpoints()
    assert [(c["name"], "cannot be found" in c["problem"]) for c in listed["checkpoints"]] == [("adapter", True)]

    other = tmp_path / "other_base"
    shutil.copytree(tiny_checkpoint, other)
    shard = next((other / "transformer").glob("*.safetensors"))
    weights = load_file(str(shard))
    weights["layers.1.mlp.down_proj.weight"] = weights["layers.1.mlp.down_proj.weight"] * 1.01
    save_file(weights, str(shard))
    base_file.write_text(json.dumps({**info, "base_model_name_or_path": "../other_base"}))  # relative to the folder
    with pytest.raises(ValueError, match=r"trained on another base .*1 weights differ, e.g. 'layers.1.mlp.down_proj.weight'"):
        Policy.from_pretrained(adapter, device="cpu")

    base_file.write_text(json.dumps({**info, "base_model_name_or_path": str(adapter)}))
    with pytest.raises(ValueError, match="form a loop"):
        Policy.check_pretrained(adapter)
    # trained on the plain tiny base, pointed at an adapter checkpoint of the same base: its fused weights are not
    # compared by value, so the kind of base is
    sibling = lora_runs["root"] / "c" / "checkpoints" / "step-0000002"
    base_file.write_text(json.dumps({**info, "base_model_name_or_path": str(sibling)}))
    with pytest.raises(ValueError, match="trained on a complete folder and this is a LoRA adapter checkpoint"):
        Policy.from_pretrained(adapter, device="cpu")
    base_file.write_text(json.dumps({**info, "base_model_name_or_path": "nvidia/no-such-base"}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"is a LoRA adapter on the base 'nvidia/no-such-base': could not "
                                                r"fetch .* set base_model_name_or_path in its base_model.json"):
        Policy.from_pretrained(adapter, device="cpu")
    fewer = dict(info["weight_samples"])
    fewer.pop("layers.0.mlp.up_proj.weight")  # a weight a newer diffusers adds is not in the samples: not a mismatch
    base_file.write_text(json.dumps({**info, "weight_samples": fewer}))
    Policy.from_pretrained(adapter, device="cpu")
    base_file.write_text("{}")
    with pytest.raises(ValueError, match="base_model.json is unreadable .missing base_model_name_or_path, weight_samples"):
        Policy.check_pretrained(adapter)
    base_file.write_text(json.dumps(info))
    trained = (adapter / "trained.safetensors").read_bytes()
    (adapter / "trained.safetensors").write_bytes(trained[:-10])  # a copy cut short: refused before the base loads
    from diffusers import Cosmos3OmniPipeline

    with monkeypatch.context() as patch:
        patch.setattr(Cosmos3OmniPipeline, "from_pretrained", lambda *a, **k: pytest.fail("the base loaded"))
        with pytest.raises(ValueError, match=r"is incomplete: trained.safetensors is \d+ bytes where its header "
                                             r"describes \d+: cut short"):
            Policy.from_pretrained(adapter, device="cpu")
    (adapter / "trained.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks trained.safetensors"):
        Policy.check_pretrained(adapter)


def test_merge_adapter_writes_the_merged_checkpoint(lora_runs, tmp_path, capsys, monkeypatch):
    from worldpolicy import Policy
    from worldpolicy.cli import main

    merged = lora_runs["root"] / "a" / "checkpoints" / "step-0000003"
    adapter = lora_runs["root"] / "c" / "checkpoints" / "step-0000003"
    out = tmp_path / "merged"
    from worldpolicy.fileio import STAGED_KIND, ScratchFolder

    killed = ScratchFolder(out, STAGED_KIND)  # what a killed merge left: its hold went with its process
    (killed.make() / "transformer").mkdir()
    killed.release()
    monkeypatch.chdir(tmp_path)  # both given relative: printed absolute, as every command's JSON gives a path
    assert main(["merge-adapter", os.path.relpath(adapter), "--out", "merged"]) == 0
    assert not killed.path.exists()  # removed by the next merge to the same --out (`fileio.staged_folder`)
    said = capsys.readouterr()
    assert (json.loads(said.out)["merged"], json.loads(said.out)["from"]) == (str(out), str(adapter))
    # each long stage said as it starts (minutes each at Nano size), where only the JSON came at the end
    loading = said.err.index(f"merge-adapter: loading {adapter}'s base and fusing its adapters on the CPU in float32")
    assert said.err.index(f"merge-adapter: writing the merged model in float32 to {out}") > loading
    written, trained = _weights(out), _weights(merged)
    assert written.keys() == trained.keys() and all(v.dtype == torch.float32 for v in written.values())
    for key in trained:
        torch.testing.assert_close(written[key], trained[key], rtol=1e-5, atol=1e-6)
    for record in ("embodiment.json", "trainer_state.json"):  # the run's record: embodiment, objectives, frames
        assert (out / record).read_text() == (adapter / record).read_text()
    assert not (out / "base_model.json").exists()
    # its card: the adapter's, saying it loads onto a base, becomes the merged model's own, named by --out
    assert "LoRA adapter checkpoint" in (adapter / "README.md").read_text()
    card = (out / "README.md").read_text()
    assert "LoRA adapter checkpoint" not in card and "saved merged into the weights" in card
    assert "- steps: 3 of 3" in card and 'load_policy("path/to/merged")' in card
    assert Policy.from_pretrained(out, device="cpu").embodiment.name == json.loads(
        (adapter / "embodiment.json").read_text())["name"]

    assert main(["merge-adapter", str(adapter), "--out", str(out)]) == 2  # never over a folder with files
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert main(["merge-adapter", str(merged), "--out", str(tmp_path / "again")]) == 2
    assert "is not a LoRA adapter checkpoint (no base_model.json)" in capsys.readouterr().err
    assert main(["merge-adapter", str(tmp_path / "nope"), "--out", str(tmp_path / "again")]) == 2
    assert "does not exist; give a LoRA adapter checkpoint folder" in capsys.readouterr().err
    # inside the checkpoint it came from: rotating the run's checkpoints would delete it
    assert main(["merge-adapter", str(adapter), "--out", str(adapter / "merged")]) == 2
    assert "is inside" in capsys.readouterr().err and not (adapter / "merged").exists()
    assert not (tmp_path / "again").exists() and [p.name for p in tmp_path.iterdir()] == ["merged"]

    # in bf16: fused in fp32 and cast once, the merged fp32 checkpoint cast to bf16 (to fp32 fusing's last bits)
    assert main(["merge-adapter", str(adapter), "--out", str(tmp_path / "half"), "--dtype", "bfloat16"]) == 0
    capsys.readouterr()
    half = _weights(tmp_path / "half")
    for key in trained:  # the transformer's `_keep_in_fp32_modules` stay fp32, as from_pretrained(dtype=) keeps them
        expected = trained[key].to(half[key].dtype)
        torch.testing.assert_close(half[key].float(), expected.float(), rtol=2 ** -8, atol=1e-6)
    assert sum(v.dtype == torch.bfloat16 for v in half.values()) > 0.9 * len(half)

    # refused before anything loads: a link, the working directory
    from worldpolicy.engine import loading

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("loaded"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    monkeypatch.chdir(tmp_path / "empty")
    for target, problem in ((str(tmp_path / "link"), "is a symbolic link"), (".", "is the working directory")):
        assert main(["merge-adapter", str(adapter), "--out", target]) == 2
        assert f"--out: {target!r} {problem}; give a new or empty folder" in capsys.readouterr().err


def test_an_adapter_on_an_adapter_checkpoint_loads_in_any_dtype_and_refuses_another_base_adapter(lora_runs, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from worldpolicy import Policy

    chained = lora_runs["root"] / "d" / "checkpoints" / "step-0000001"
    first = lora_runs["root"] / "c" / "checkpoints" / "step-0000003"
    info = json.loads((chained / "base_model.json").read_text())
    assert info["base_model_name_or_path"] == str(first) and len(info["base_adapter_sha256"]) == 64
    # the first adapter is fused into the base in each dtype before the sampled weights are compared: its fused
    # weights differ from the fp32 ones the second run sampled, and are checked by the first adapter's digest
    for dtype in ("float32", "bfloat16"):
        Policy.from_pretrained(chained, device="cpu", dtype=dtype)
    # its base is a training run's checkpoint, which that run's rotation would delete: said when training starts
    assert any("is a training run's checkpoint" in w and "merge-adapter" in w for w in lora_runs["chain_warnings"])

    copy = tmp_path / "first"
    shutil.copytree(first, copy)
    trained = load_file(str(copy / "trained.safetensors"))
    name = next(iter(trained))
    trained[name] = trained[name] + 1e-3  # a sibling adapter run: same tiny base, other trained weights
    save_file(trained, str(copy / "trained.safetensors"))
    moved = tmp_path / "chained"
    shutil.copytree(chained, moved)
    (moved / "base_model.json").write_text(json.dumps({**info, "base_model_name_or_path": str(copy)}))
    with pytest.raises(ValueError, match=r"trained on another base than .*first.* \(its adapters or trained weights differ\)"):
        Policy.from_pretrained(moved, device="cpu")
    merged = lora_runs["root"] / "a" / "checkpoints" / "step-0000003"  # the same model, merged: another base
    (moved / "base_model.json").write_text(json.dumps({**info, "base_model_name_or_path": str(merged)}))
    with pytest.raises(ValueError, match=r"trained on a LoRA adapter checkpoint \(sha256 \w{12}...\) and this is a "
                                         r"complete folder; a merged copy is another base"):
        Policy.from_pretrained(moved, device="cpu")

    # a complete folder holding a stray base_model.json is still a complete checkpoint
    stray = tmp_path / "complete"
    shutil.copytree(merged, stray)
    shutil.copyfile(chained / "base_model.json", stray / "base_model.json")
    Policy.from_pretrained(stray, device="cpu")


def test_a_full_fine_tune_starts_from_an_adapter_checkpoint(lora_runs, train_config):
    """Loading an adapter checkpoint left its weights frozen (peft freezes the base to apply the adapter), so a full
    fine-tune from one failed with torch's 'optimizer got an empty parameter list'. Every weight now trains."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = train_config(lora_runs["root"] / "full_from_adapter", optim={"steps": 1, "batch_size": 2})
    raw["checkpoint"] = str(lora_runs["root"] / "c" / "checkpoints" / "step-0000003")
    trainer = Trainer(load_config(raw), progress=False)
    assert [record.step for record in trainer.run()] == [1]
    assert len(trainer.params) == len(list(trainer.transformer.parameters()))

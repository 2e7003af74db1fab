"""The engine matches diffusers' Cosmos3OmniPipeline given the same initial noise (seeded generator), in fp32.

Both are given float [0, 1] numpy frames, which the pipeline resizes in float as worldpolicy does. Given PIL images
the pipeline resizes (to its 16-pixel snap) in uint8 (actions ~1e-3 apart), and uint8 numpy arrays it does not scale
by 1/255 at all (frames in [-1, 509]); worldpolicy reads uint8 of any form as 0..255.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

import worldpolicy
from worldpolicy.policy import PolicyRequest

TASK = "Pick up the banana and place it in the bowl"
# Measured at most 8e-7 (fp32, CPU: the packed batch sums in another order than the pipeline's one sequence). 1e-4 let
# an engine pass that fed every noisy token a timestep 0.1 % off (5e-5 from the pipeline); 1e-5 refuses it.
REL = 1e-5


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return {
        "image": rng.random((64, 80, 3)).astype(np.float32),
        "video": rng.random((17, 64, 80, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (16, 10)),
    }


@pytest.mark.parametrize("shape", ["tiny", "relu2"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
@pytest.mark.parametrize("mode", ["policy", "forward_dynamics", "inverse_dynamics"])
def test_engine_matches_pipeline(checkpoints, inputs, shape, guidance, mode):
    from diffusers import Cosmos3OmniPipeline, CosmosActionCondition

    ckpt = checkpoints[shape]
    pipe = Cosmos3OmniPipeline.from_pretrained(ckpt, enable_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    policy = worldpolicy.load_policy(ckpt, embodiment="droid/relative_pose", chunk_size=16, resolution_tier=256)

    cond = dict(mode=mode, chunk_size=16, domain_name="droid_lerobot", resolution_tier=256, view_point="concat_view")
    if mode == "inverse_dynamics":
        cond["video"] = list(inputs["video"])
        request = PolicyRequest(inputs["video"], TASK, mode=mode)
    else:
        cond["image"] = inputs["image"]
        request = PolicyRequest(inputs["image"], TASK, mode=mode)
    if mode == "forward_dynamics":
        cond["raw_actions"] = torch.tensor(inputs["actions"], dtype=torch.float32)
        request.actions, request.actions_space = inputs["actions"], "normalized"
    request.seed, request.steps, request.guidance, request.decode_video = 7, 4, guidance, True

    expected = pipe(prompt=TASK, action=CosmosActionCondition(**cond), num_inference_steps=4, guidance_scale=guidance,
                    fps=15.0, generator=torch.Generator().manual_seed(7), output_type="np")
    engine_request, _ = policy._prepare(request)
    out = policy.engine.run([engine_request])[0]

    assert out.video.shape == expected.video.shape
    assert rel_err(expected.video, out.video) < REL
    if mode == "forward_dynamics":
        assert expected.action is None and out.actions is None
    else:
        assert out.actions.shape == (16, 10)
        assert rel_err(expected.action[0].numpy(), out.actions) < REL
    # The same path through the public API gives the same numbers.
    public = policy.act_batch([request])[0]
    if mode != "forward_dynamics":
        assert rel_err(out.actions, public.actions_normalized) < 1e-6


def test_batched_requests_match_single_runs(tiny_policy, inputs):
    reqs = [
        PolicyRequest(inputs["image"], TASK, seed=1, guidance=3.0),
        PolicyRequest(inputs["image"][:48], "Push the red cube to the green target.", seed=2, guidance=1.0),
        PolicyRequest(inputs["image"], TASK, mode="forward_dynamics", actions=inputs["actions"],
                      actions_space="normalized", seed=3, decode_video=True),
    ]
    batched = tiny_policy.act_batch(reqs)
    for req, got in zip(reqs, batched):
        single = tiny_policy.act_batch([req])[0]
        assert rel_err(single.actions_normalized, got.actions_normalized) < 1e-5
        if single.video is not None:
            assert np.abs(single.video.astype(int) - got.video.astype(int)).max() <= 1
    # different seeds/prompts really give different chunks (the batch did not mix requests up)
    assert rel_err(batched[0].actions_normalized, batched[1].actions_normalized) > 1e-3


def test_first_frame_encode_is_exact(tiny_policy, inputs):
    from worldpolicy.processing.observations import prepare_canvas

    canvas, _ = prepare_canvas(inputs["video"], 256, 17)
    full = tiny_policy.engine.encode_video(canvas)
    first = tiny_policy.engine.encode_video(canvas[:, :, :1])
    assert torch.equal(full[:, :, :1], first)


def test_seed_determinism_and_text_cache(tiny_policy, inputs, monkeypatch):
    a = tiny_policy.act(inputs["image"], TASK, seed=11)
    n_cached = len(tiny_policy.engine._texts)
    clocks = []  # each a device sync on a GPU: a cached caption is a lookup, not timed
    real_clock = tiny_policy.engine._clock
    monkeypatch.setattr(tiny_policy.engine, "_clock", lambda: clocks.append(1) or real_clock())
    b = tiny_policy.act(inputs["image"], TASK, seed=11)
    cached_clocks = len(clocks)
    c = tiny_policy.act(inputs["image"], TASK, seed=12)
    assert np.array_equal(a.actions, b.actions)
    assert not np.allclose(a.actions, c.actions)
    assert len(tiny_policy.engine._texts) == n_cached  # same caption: text tower reused, not recomputed
    assert set(a.timings) >= {"preprocess", "vae_encode", "text", "denoise", "total"}
    # the text tower's time: none where the caption came from the cache (the run page says why it is 0)
    clocks.clear()
    assert b.timings["text"] == 0.0 and tiny_policy.act(inputs["image"], TASK + " now", seed=11).timings["text"] > 0
    assert len(clocks) == cached_clocks + 2


def test_json_caption_is_the_pipelines(tiny_checkpoint):
    from diffusers import Cosmos3OmniPipeline

    from worldpolicy.processing.prompts import json_caption

    for view in ("ego_view", "concat_view", "wrist_view"):
        for frames, fps, h, w in ((17, 15.0, 480, 832), (33, 5.0, 640, 640), (65, 24.0, 736, 544)):
            ours = json_caption(TASK, view, frames, fps, h, w)
            theirs = Cosmos3OmniPipeline._build_action_json_prompt(TASK, view_point=view, num_frames=frames, fps=fps,
                                                                   height=h, width=w)
            assert ours == theirs


def test_bf16_engine_matches_bf16_pipeline(tiny_checkpoint, inputs):
    """The dtype GPUs run: weights loaded in bf16 (time embedder kept fp32), sampler state fp32. On CPU the engine's
    bf16 actions and latents equal the pipeline's in every mode; `build_components(dtype=)` (the GPU benchmark's
    in-memory Nano) casts the same way `from_pretrained(dtype=)` loads."""
    from diffusers import Cosmos3OmniPipeline, CosmosActionCondition

    from worldpolicy.testing import build_components

    pipe = Cosmos3OmniPipeline.from_pretrained(tiny_checkpoint, enable_safety_checker=False, dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    built, *_ = build_components(dtype="bfloat16")  # the checkpoint's sizes and seed
    loaded = pipe.transformer.state_dict()
    assert {k: v.dtype for k, v in built.state_dict().items()} == {k: v.dtype for k, v in loaded.items()}
    assert all(torch.equal(v, loaded[k]) for k, v in built.state_dict().items())
    assert loaded["time_embedder.linear_1.weight"].dtype == torch.float32 and pipe.vae.dtype == torch.bfloat16

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=16,
                                     resolution_tier=256, dtype="bfloat16")
    cond = CosmosActionCondition(mode="policy", chunk_size=16, domain_name="droid_lerobot", image=inputs["image"],
                                 resolution_tier=256, view_point="concat_view")
    expected = pipe(prompt=TASK, action=cond, num_inference_steps=4, guidance_scale=3.0, fps=15.0,
                    generator=torch.Generator().manual_seed(7), output_type="latent").action[0].float().numpy()
    ours = policy.act(inputs["image"], TASK, seed=7, steps=4, guidance=3.0).actions_normalized
    assert rel_err(expected, ours) < 1e-3  # measured 0 on CPU; bf16 rounding is ~4e-3 per operation

    # clean action rows (forward dynamics) and clean frames beside noisy actions (inverse dynamics) reach the bf16
    # projections by other paths than policy's
    for mode in ("forward_dynamics", "inverse_dynamics"):
        observation = inputs["video"] if mode == "inverse_dynamics" else inputs["image"]
        request = PolicyRequest(observation, TASK, mode=mode, seed=7, steps=4, guidance=3.0)
        cond = dict(mode=mode, chunk_size=16, domain_name="droid_lerobot", resolution_tier=256,
                    view_point="concat_view")
        if mode == "forward_dynamics":
            cond.update(image=observation, raw_actions=torch.tensor(inputs["actions"], dtype=torch.float32))
            request.actions, request.actions_space = inputs["actions"], "normalized"
        else:
            cond["video"] = list(observation)
        expected = pipe(prompt=TASK, action=CosmosActionCondition(**cond), num_inference_steps=4, guidance_scale=3.0,
                        fps=15.0, generator=torch.Generator().manual_seed(7), output_type="latent")
        engine_request, _ = policy._prepare(request)
        out = policy.engine.run([engine_request])[0]
        assert rel_err(expected.video.float(), out.latents) < 1e-3, mode  # measured 0 on CPU
        if mode == "inverse_dynamics":
            assert rel_err(expected.action[0].float().numpy(), out.actions) < 1e-3


def test_a_seed_gives_one_result_wherever_the_request_runs(tiny_checkpoint, inputs):
    """Same seed, same chunk: alone or in a batch, at either end of it (both sharing one cached text K/V), with its
    caption's K/V from the cache or recomputed after eviction, and from a policy's seed sequence via act() or
    act_batch(). A sampler that wrote into cached K/V, or let one request's state reach another, fails this."""
    def load():
        return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=8,
                                       resolution_tier=256, seed=40)

    policy = load()
    request = PolicyRequest(inputs["image"], TASK, seed=5, steps=2)
    other = PolicyRequest(inputs["image"][:48], "Push the red cube to the green target.", seed=6, steps=2,
                          guidance=1.0)
    alone = policy.act_batch([request])[0].actions  # text K/V computed
    first, middle, last = policy.act_batch([request, other, request])  # cached, shared by both ends
    again = policy.act_batch([request])[0].actions  # cached
    policy.engine._text_cache_size = 1
    policy.act_batch([other])  # pushes TASK's caption out
    evicted = policy.act_batch([request])[0].actions  # recomputed
    for got in (first.actions, last.actions, again, evicted):
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)
    assert not np.allclose(middle.actions, alone)

    unseeded = PolicyRequest(inputs["image"], TASK, steps=2)
    sequence = [policy.act(inputs["image"], TASK, steps=2) for _ in range(2)]
    batched = load().act_batch([unseeded, unseeded])
    assert [p.settings["seed"] for p in sequence] == [p.settings["seed"] for p in batched] == [40, 41]
    for one, other_run in zip(sequence, batched):
        np.testing.assert_allclose(one.actions, other_run.actions, rtol=0, atol=1e-6)


def _edit_json(file, **changes):
    file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))


def _und_k_norm_for_gen(ckpt):
    """The transformer with `qk_norm_for_text=False, use_und_k_norm_for_gen=True`: text keys reach the gen tower
    through `k_norm_und_for_gen` (None in every other test), its weights perturbed so the norm is not the identity."""
    from diffusers import Cosmos3OmniTransformer

    config = {**Cosmos3OmniTransformer.load_config(ckpt / "transformer"), "qk_norm_for_text": False,
              "use_und_k_norm_for_gen": True}
    torch.manual_seed(3)
    transformer = Cosmos3OmniTransformer.from_config(config)
    with torch.no_grad():
        for param in transformer.parameters():
            if param.dim() == 1:
                param.add_(0.05 * torch.randn_like(param))
    assert transformer.layers[0].self_attn.k_norm_und_for_gen is not None
    transformer.save_pretrained(ckpt / "transformer")


@dataclasses.dataclass
class Variant:
    """One setting the parity test above leaves at a single value (the tiny checkpoint's flags and linear-flow
    scheduler, 4 steps, chunk 16, no negative prompt), changed where the pipeline reads it."""

    edits: dict = dataclasses.field(default_factory=dict)  # checkpoint JSON file -> keys changed
    rebuild: object = None  # rewrites part of the checkpoint
    options: dict = dataclasses.field(default_factory=dict)  # load_policy's
    scheduler: dict | None = None  # the same override for the pipeline's scheduler
    mode: str = "policy"
    chunk: int = 16
    steps: int = 4
    negative: str = ""


VARIANTS = {
    # model_index.json's default_use_system_prompt, and a negative prompt for CFG's uncond branch
    "system_prompt": Variant(edits={"model_index.json": {"default_use_system_prompt": True}},
                             negative="blurry, static"),
    # model_index.json's use_native_flow_schedule; 10 steps run UniPC's second order, and a 32-step chunk 9 latents
    "native_flow": Variant(edits={"model_index.json": {"use_native_flow_schedule": True}}, chunk=32, steps=10),
    # a Karras scheduler config (as the shipped Nano's reportedly is, cosmos3-model.md §11)
    "karras": Variant(edits={"scheduler/scheduler_config.json": {"use_karras_sigmas": True, "sigma_min": 0.147,
                                                                 "sigma_max": 200.0}},
                      mode="inverse_dynamics", steps=6),
    # schedule="linear" with a shift of its own: the scheduler the pipeline would be handed for the same sampling
    "shift_override": Variant(options={"schedule": "linear", "shift": 2.0},
                              scheduler={"use_karras_sigmas": False, "use_flow_sigmas": True, "flow_shift": 2.0},
                              mode="forward_dynamics", chunk=8),
    "und_k_norm_for_gen": Variant(rebuild=_und_k_norm_for_gen, mode="inverse_dynamics"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_engine_matches_pipeline_on_other_checkpoint_flags_and_schedules(tiny_checkpoint, tmp_path, inputs, variant):
    import shutil

    from diffusers import Cosmos3OmniPipeline, CosmosActionCondition

    v = VARIANTS[variant]
    mode, chunk, steps, negative = v.mode, v.chunk, v.steps, v.negative
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    for name, changes in v.edits.items():
        _edit_json(ckpt / name, **changes)
    if v.rebuild is not None:
        v.rebuild(ckpt)
    pipe = Cosmos3OmniPipeline.from_pretrained(ckpt, enable_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if v.scheduler:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **v.scheduler)
    policy = worldpolicy.load_policy(ckpt, embodiment="droid/relative_pose", chunk_size=chunk, resolution_tier=256,
                                     **v.options)

    cond = dict(mode=mode, chunk_size=chunk, domain_name="droid_lerobot", resolution_tier=256, view_point="concat_view")
    observation = inputs["video"][: chunk + 1] if mode == "inverse_dynamics" else inputs["image"]
    cond["video" if mode == "inverse_dynamics" else "image"] = (list(observation) if mode == "inverse_dynamics"
                                                                else observation)
    request = PolicyRequest(observation, TASK, mode=mode, seed=7, steps=steps, guidance=3.0, negative_prompt=negative)
    if mode == "forward_dynamics":
        cond["raw_actions"] = torch.tensor(inputs["actions"][:chunk], dtype=torch.float32)
        request.actions, request.actions_space = inputs["actions"][:chunk], "normalized"

    expected = pipe(prompt=TASK, negative_prompt=negative, action=CosmosActionCondition(**cond),
                    num_inference_steps=steps, guidance_scale=3.0, fps=15.0,
                    generator=torch.Generator().manual_seed(7), output_type="latent")
    engine_request, _ = policy._prepare(request)
    out = policy.engine.run([engine_request])[0]
    assert rel_err(expected.video, out.latents) < REL
    if mode == "forward_dynamics":
        assert expected.action is None and out.actions is None
    else:
        assert out.actions.shape == (chunk, 10)
        assert rel_err(expected.action[0].numpy(), out.actions) < REL

"""`[augment]`: the Cosmos Policy recipe's image augmentation. Its settings are checked, one draw (from a window's key
alone) changes every frame of a window alike, the latent cache holds `copies` draws under its own fingerprint, the
trainer picks one per step, and a checkpoint trained with it is centre-cropped at inference as recorded."""

from __future__ import annotations

import colorsys
import html
import json
import re
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from train_setup import CHUNK, VIDEO_KEYS, tiny_observation


@pytest.mark.parametrize("augment, message", [
    ({"enabled": True, "copies": 0}, "augment.copies=0: must be an integer >= 1"),
    ({"enabled": True, "crop_area": 0.0}, "augment.crop_area=0.0: must be in (0, 1]"),
    ({"enabled": True, "crop_area": 1.5}, "augment.crop_area=1.5: must be in (0, 1]"),
    ({"enabled": True, "rotation": -5}, "augment.rotation=-5.0: must be in [0, 180]"),
    ({"enabled": True, "hue": 0.6}, "augment.hue=0.6: must be in [0, 0.5]"),
    ({"enabled": True, "brightness": [1.3, 0.7]}, "augment.brightness=[1.3, 0.7]: must be [low, high] with 0 <= low"),
    ({"enabled": True, "contrast": [1.0]}, "augment.contrast=[1.0]: must be [low, high]"),
    ({"enabled": True, "saturation": "wide"}, "augment.saturation='wide': expected a list of numbers, got str"),
    ({"copies": 8}, ("augment.copies=8 set, but augment.enabled is false, so no frame is augmented: set "
                     "augment.enabled = true, or remove them")),
    ({"enabled": True, "crop": 0.9}, "augment: unknown keys ['crop']"),
])
def test_augment_settings_are_checked_naming_the_setting(train_config, tmp_path, augment, message):
    from worldpolicy.train.config import load_config

    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(train_config(tmp_path / "run", augment=augment))


def test_the_recipes_ranges_are_the_defaults_and_integers_read_as_numbers(train_config, tmp_path):
    from worldpolicy.train.config import load_config

    config = load_config(train_config(tmp_path / "run", augment={"enabled": True, "brightness": [1, 2]}))
    augment = config.augment
    assert augment.brightness == [1.0, 2.0] and all(isinstance(v, float) for v in augment.brightness)
    assert (augment.copies, augment.crop_area, augment.rotation, augment.contrast, augment.saturation, augment.hue) \
        == (4, 0.9, 5.0, [0.6, 1.4], [0.5, 1.5], 0.05)
    assert not load_config(train_config(tmp_path / "plain")).augment.enabled  # off unless asked for


def _clip(frames: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((frames, 24, 40, 3)).astype(np.float32)


def test_one_draw_per_key_changes_every_frame_of_a_window_alike():
    from worldpolicy.train.augment import augment_frames
    from worldpolicy.train.config import AugmentConfig

    augment, clip = AugmentConfig(enabled=True), _clip()
    first = augment_frames(clip, augment, (0, 3, 0))
    assert first.shape == clip.shape and first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    assert np.array_equal(first, augment_frames(clip, augment, (0, 3, 0)))  # the same key: the same frames
    for other in ((0, 3, 1), (1, 3, 0), (0, 4, 0)):  # another copy, episode or window: another draw
        assert np.abs(augment_frames(clip, augment, other) - first).mean() > 0.01
    # one draw for all frames: each frame comes out as it would alone under the same key
    for t in range(len(clip)):
        np.testing.assert_allclose(first[t], augment_frames(clip[t:t + 1], augment, (0, 3, 0))[0], atol=1e-6)
    assert np.abs(first - clip).mean() > 0.01


def test_ranges_that_change_nothing_leave_the_frames_as_they_are():
    from worldpolicy.train.augment import augment_frames
    from worldpolicy.train.config import AugmentConfig

    none = AugmentConfig(enabled=True, crop_area=1.0, rotation=0.0, brightness=[1.0, 1.0], contrast=[1.0, 1.0],
                         saturation=[1.0, 1.0], hue=0.0)
    clip = _clip()
    np.testing.assert_allclose(augment_frames(clip, none, (0, 0, 0)), clip, atol=1e-6)


def test_the_hue_shift_is_hsv_s_as_colorsys_computes_it():
    from worldpolicy.train.augment import shift_hue

    pixels = np.random.default_rng(1).random((40, 3))
    pixels[:3] = [[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # gray, black, a pure hue
    video = torch.from_numpy(pixels.T.reshape(1, 3, 5, 8).astype(np.float32))
    shifted = shift_hue(video, 0.13)[0].reshape(3, -1).T.numpy()
    expected = [colorsys.hsv_to_rgb((h + 0.13) % 1, s, v) for h, s, v in (colorsys.rgb_to_hsv(*p) for p in pixels)]
    np.testing.assert_allclose(shifted, expected, atol=1e-5)


def test_the_inference_crop_is_the_centre_of_the_recipes_area_resized_back():
    from worldpolicy.processing.observations import center_crop, crop_hw

    assert crop_hw(224, 224, 0.9) == (212, 212)  # the recipe's
    frame = np.zeros((2, 224, 224, 3), dtype=np.float32)
    frame[:, :6], frame[:, -6:], frame[:, :, :6], frame[:, :, -6:] = 1.0, 1.0, 1.0, 1.0  # a border the crop drops
    frame[:, 100:124, 100:124] = 0.5
    cropped = center_crop(frame, 0.9)
    assert cropped.shape == frame.shape and cropped[:, :2].max() == 0 and cropped[:, :, -2:].max() == 0
    assert cropped[:, 112, 112].tolist() == [[0.5] * 3] * 2  # the centre stays where it was


def test_the_cache_fingerprint_holds_the_augmentation_and_leaves_runs_without_it_as_they_were(tiny_dataset):
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.embodiments import register_embodiment
    from worldpolicy.train.config import AugmentConfig
    from worldpolicy.train.data import WindowSpec, data_key

    layout = register_embodiment({**TINY_EMBODIMENT, "name": "tiny_panda_augment", "domain": "tiny_panda_augment",
                                  "domain_id": 31, "chunk_size": CHUNK}, overwrite=True)
    spec = WindowSpec(dataset=str(tiny_dataset), chunk_size=CHUNK, video_keys=tuple(VIDEO_KEYS))
    plain = data_key(spec, layout)
    keys = [data_key(replace(spec, augment=augment), layout) for augment in (
        AugmentConfig(enabled=True), AugmentConfig(enabled=True, copies=2), AugmentConfig(enabled=True, hue=0.1),
        AugmentConfig(enabled=True, brightness=[0.8, 1.2]))]
    keys.append(data_key(replace(spec, center_crop=0.9), layout))
    assert len({plain, *keys}) == 6  # each setting its own cache
    assert data_key(replace(spec, augment=AugmentConfig(enabled=True)), layout) == keys[0]
    # no augmentation: the fingerprint of before the setting (its payload has no `augment` / `center_crop`), so the
    # caches written then still serve
    assert data_key(replace(spec, augment=None, center_crop=None), layout) == plain


@pytest.fixture(scope="module")
def augmented_run(tmp_path_factory, train_config):
    """Two steps with `[augment]` (2 copies) and episode 1 held out, its held-out actions sampled at step 2."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("augment")
    raw = train_config(root / "run", optim={"steps": 2}, augment={"enabled": True, "copies": 2},
                       data={"cache_dir": str(root / "cache")},
                       validation={"episodes": [1], "every": 2, "windows": 2, "action_chunks": 1, "action_steps": 1})
    trainer = Trainer(load_config(raw), progress=False)
    records = trainer.run()
    return {"root": root, "trainer": trainer, "records": records,
            "checkpoint": root / "run" / "checkpoints" / "step-0000002"}


def test_the_cache_holds_each_windows_copies_and_the_trainer_draws_one_per_position(augmented_run):
    from worldpolicy.train.data import LatentCache

    trainer = augmented_run["trainer"]
    folders = sorted((augmented_run["root"] / "cache").glob("latents-*-v3"))
    caches = [LatentCache.load(folder) for folder in folders]
    training = next(c for c in caches if c.meta.get("augment_copies") == 2)
    held_out = next(c for c in caches if "augment_copies" not in c.meta)  # scored on one (centre-cropped) encoding
    assert len(folders) == 2 and training.latent_copies == 2 and held_out.latent_copies == 1
    # the held-out windows: one encoding each, centre-cropped as inference crops the frames
    assert trainer._val_spec.augment is None and trainer._val_spec.center_crop == 0.9
    first = training.latents[0]
    assert first.shape[0] == 2 and first.shape[1:] == held_out.latents[0].shape
    assert not torch.equal(first[0], first[1])  # two draws, two encodings
    assert all(lat.shape[0] == 2 for lat in training.latents)
    picked = [trainer._augmented(trainer.examples[0], 0, position).latents for position in range(16)]
    assert all(any(torch.equal(p, c) for c in first) for p in picked)
    assert any(torch.equal(p, first[0]) for p in picked) and any(torch.equal(p, first[1]) for p in picked)
    assert torch.equal(trainer._augmented(trainer.examples[0], 0, 5).latents, picked[5])  # from (seed, position)
    assert [r.step for r in augmented_run["records"]] == [1, 2] and all(np.isfinite(r.loss) for r in
                                                                         augmented_run["records"])


def test_a_run_with_augmentation_says_so_as_it_starts(augmented_run, caplog):
    """The console said nothing of `[augment]` as a run started (its cache then took `copies` times the encoding):
    its start lines say what the session trains, augmentation on with its ranges, as the run's page says them."""
    with caplog.at_level("INFO", logger="worldpolicy.train.trainer"):
        augmented_run["trainer"]._say_what_it_trains(0)
    said = [record.getMessage() for record in caplog.records]
    assert said[0].startswith("this session trains steps 1-2 of 2: full fine-tuning, batch 2")
    assert said[1] == ("image augmentation: random crops of 0.9 of the frame's area, rotation up to ±5°, brightness "
                       "0.7-1.3, contrast 0.6-1.4, saturation 0.5-1.5, hue ±0.05; 2 draws of each window")


def test_a_checkpoint_trained_with_augmentation_records_it_and_is_centre_cropped_at_inference(augmented_run,
                                                                                              monkeypatch):
    import worldpolicy.policy as policy_module
    from worldpolicy.policy import Policy, trained_center_crop

    checkpoint = augmented_run["checkpoint"]
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["config"]["augment"]["enabled"] is True and state["config"]["augment"]["copies"] == 2
    card = (checkpoint / "README.md").read_text()
    assert "image augmentation" in card and "center_crop=False" in card
    # the run's page says it as the card does (`viz.train_report.augmentation`, one line for both)
    from worldpolicy.viz.report import write_report
    from worldpolicy.viz.train_report import augmentation

    said = augmentation(state["config"]["augment"])
    assert said == ("random crops of 0.9 of the frame's area, rotation up to ±5°, brightness 0.7-1.3, "
                    "contrast 0.6-1.4, saturation 0.5-1.5, hue ±0.05; 2 draws of each window")
    assert f"(`[augment]`, the Cosmos Policy recipe's): {said}. At inference" in card
    page = html.unescape(re.sub(r"<[^>]+>", "", write_report(augmented_run["root"] / "run").read_text()))
    assert f"image augmentation{said}" in page
    assert trained_center_crop(checkpoint) == 0.9

    crops = []
    real = policy_module.center_crop
    monkeypatch.setattr(policy_module, "center_crop", lambda frames, area: crops.append(area) or real(frames, area))
    policy = Policy.from_pretrained(checkpoint, device="cpu", steps=1)
    prediction = policy.act(tiny_observation(0), "move the gripper to the red ball")
    assert policy.center_crop == 0.9 and prediction.settings["center_crop"] == 0.9 and crops == [0.9]
    assert policy.metadata()["center_crop"] == 0.9
    crops.clear()
    off = Policy.from_pretrained(checkpoint, device="cpu", steps=1, center_crop=False)  # turned off explicitly
    assert off.center_crop is None and off.act(tiny_observation(0), "task").settings["center_crop"] is None
    assert crops == []
    with pytest.raises(ValueError, match=r"center_crop=1\.5: accepted: None"):
        Policy.from_pretrained(checkpoint, device="cpu", center_crop=1.5)


def test_a_checkpoint_trained_without_augmentation_is_not_cropped(tmp_path, tiny_checkpoint):
    from worldpolicy.policy import Policy, trained_center_crop

    assert trained_center_crop(tiny_checkpoint) is None  # no training record
    for augment in ({"enabled": False, "crop_area": 0.9}, None):
        (tmp_path / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {"augment": augment}}))
        assert trained_center_crop(tmp_path) is None
    # a record a newer worldpolicy wrote is refused, not read as "no crop" (`fileio.NewerFormatError`)
    from worldpolicy.fileio import NewerFormatError

    newer = {"schema": "worldpolicy.trainer_state/v99", "step": 1, "config": {"augment": {"enabled": True}}}
    (tmp_path / "trainer_state.json").write_text(json.dumps(newer))
    with pytest.raises(NewerFormatError, match="written by a newer worldpolicy"):
        trained_center_crop(tmp_path)
    assert Policy.from_pretrained(tiny_checkpoint, device="cpu").center_crop is None
    # a checkpoint trained with the recipe elsewhere (no record): asked for, the recipe's crop
    assert Policy.from_pretrained(tiny_checkpoint, device="cpu", center_crop=True).center_crop == 0.9


def test_no_center_crop_on_the_command_line_is_load_policys_center_crop_false():
    from worldpolicy.cli import build_parser, center_crop_option

    parser = build_parser()
    for argv in (["predict", "--checkpoint", "c", "--image", "f.png", "--prompt", "p", "--out", "o"],
                 ["serve", "--checkpoint", "c"]):
        assert center_crop_option(parser.parse_args(argv)) is None  # as the checkpoint's record says
        assert center_crop_option(parser.parse_args([*argv, "--no-center-crop"])) is False


def test_the_model_card_says_the_inference_crop_as_inference_reads_it():
    """The card's augmentation line names the crop inference applies (`policy.config_center_crop`, as
    `trained_center_crop` reads the record): none where `crop_area` is 1, whatever else the run augmented."""
    from worldpolicy.policy import config_center_crop
    from worldpolicy.train.config import AugmentConfig
    from worldpolicy.train.model_card import _training

    def card(**augment):
        config = {"augment": asdict(AugmentConfig(enabled=True, **augment))}
        return config_center_crop(config), _training(config, None, None, None, "base")

    crop, text = card()
    assert crop == 0.9 and "At inference each frame's centre 0.9 is cropped" in text
    crop, text = card(crop_area=1.0)
    assert crop is None and "No crop at inference (crop_area 1)" in text and "centre 1 is cropped" not in text
    assert config_center_crop({"augment": asdict(AugmentConfig(crop_area=0.8))}) is None  # not enabled: no crop

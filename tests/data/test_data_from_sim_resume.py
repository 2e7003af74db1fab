"""`dataset from-sim --resume` (`sim_to_dataset(resume=True)`): an interrupted recording continued holds the episodes
of one uninterrupted recording, seed for seed; other settings are refused before anything records; the dataset stays
whole until the continued one replaces it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")

# 3 steps: tiny episodes, which the expert never solves; `_outcomes` says which seeds count as solved
_TINY = {"image_size": (24, 24), "max_steps": 3, "cameras": ["observation/wrist_image_left"]}
_ARGV = ["--task", "reach", "--max-steps", "3", "--image-size", "24x24", "--cameras", "observation/wrist_image_left",
         "--no-progress", "--keep-failures"]


def _outcomes(monkeypatch, failing: set[int] | None, stop_at: int | None = None) -> None:
    """The expert fails the seeds in `failing` and solves the others (None: as recorded); recording seed `stop_at` is
    interrupted, as Ctrl-C in the middle of a rollout would."""
    from worldpolicy.data import from_sim

    real = getattr(from_sim._Recorder.record, "real", from_sim._Recorder.record)  # not an earlier call's

    def record(self, seed: int):
        if seed == stop_at:
            raise KeyboardInterrupt
        episode = real(self, seed)
        if failing is not None:
            episode["success"] = seed not in failing
        return episode

    record.real = real
    monkeypatch.setattr(from_sim._Recorder, "record", record)


def _same_episodes(a, b) -> None:
    """Every row and frame of dataset `a` is `b`'s, episode for episode."""
    assert a.num_episodes == b.num_episodes
    for i in range(a.num_episodes):
        ea, eb = a.episode(i), b.episode(i)
        assert ea.frames.keys() == eb.frames.keys() and ea.videos.keys() == eb.videos.keys()
        for key in ea.frames:
            np.testing.assert_array_equal(ea.frames[key], eb.frames[key], err_msg=f"episode {i} {key}")
        for key in ea.videos:
            np.testing.assert_array_equal(ea.videos[key], eb.videos[key], err_msg=f"episode {i} {key}")
    np.testing.assert_array_equal(a.episode_success, b.episode_success)


def _staged(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_a_resumed_recording_holds_the_episodes_of_one_uninterrupted_run(tmp_path, monkeypatch):
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset

    failing = {1, 4}
    _outcomes(monkeypatch, failing)
    whole = sim_to_dataset(tmp_path / "whole", "reach", 4, seed=0, **_TINY)
    assert whole.seeds == [0, 2, 3, 5] and whole.failed_seeds == [1, 4]

    root = tmp_path / "part"
    _outcomes(monkeypatch, failing, stop_at=4)  # after seeds 0, 2, 3 were kept and 1 failed
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, **_TINY)
    assert caught.value.describe("--overwrite", "--resume") == (
        f"interrupted: 3 of 4 episodes kept in {root} (a complete dataset); rerun with --resume to record the other 1")

    _outcomes(monkeypatch, failing)
    resumed = sim_to_dataset(root, "reach", 4, resume=True, **_TINY)
    assert resumed.resumed == 3
    assert resumed.seeds == whole.seeds and resumed.failed_seeds == whole.failed_seeds  # seed 4 tried again: failed
    _same_episodes(LeRobotDataset.open(tmp_path / "whole"), resumed.dataset)
    assert resumed.dataset.provenance == whole.dataset.provenance  # seeds [0, 2, 3, 5], the settings
    assert _staged(tmp_path) == []

    # resuming a complete dataset records nothing and leaves it as it is
    files = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))
    again = sim_to_dataset(root, "reach", 4, resume=True, **_TINY)
    assert again.resumed == 4 and again.seeds == whole.seeds and again.failed_seeds == [1, 4]
    assert sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*")) == files


def test_a_resumed_recording_fails_where_one_uninterrupted_run_fails(tmp_path, monkeypatch):
    """The tries are counted from the first seed, as one run counts them: max_attempts is not granted afresh."""
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import ExpertFailed, RecordingInterrupted, sim_to_dataset

    failing = {1, 3, 4}
    _outcomes(monkeypatch, failing)
    with pytest.raises(ExpertFailed) as whole:
        sim_to_dataset(tmp_path / "whole", "reach", 4, max_attempts=5, **_TINY)
    root = tmp_path / "part"
    _outcomes(monkeypatch, failing, stop_at=2)
    with pytest.raises(RecordingInterrupted):
        sim_to_dataset(root, "reach", 4, max_attempts=5, **_TINY)
    _outcomes(monkeypatch, failing)
    with pytest.raises(ExpertFailed) as resumed:
        sim_to_dataset(root, "reach", 4, max_attempts=5, resume=True, **_TINY)
    assert str(resumed.value) == str(whole.value)
    assert "solved 2 of 5 episodes of task 'reach' (seeds 0..4)" in str(whole.value)
    # as one run keeps what it solved before failing: the old episode and the new one
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 2]
    _same_episodes(LeRobotDataset.open(tmp_path / "whole"), LeRobotDataset.open(root))


def test_a_resume_with_other_settings_is_refused_naming_each_before_recording(tmp_path, monkeypatch):
    from worldpolicy.data import from_sim
    from worldpolicy.data.from_sim import sim_to_dataset

    root = tmp_path / "ds"
    sim_to_dataset(root, "reach", 1, keep_failures=True, **_TINY)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    def never(self, seed):
        raise AssertionError("recorded before the settings were checked")

    monkeypatch.setattr(from_sim._Recorder, "record", never)
    with pytest.raises(ValueError, match=r"^resume: .* was recorded with other settings: seed: 0 -> 3; "
                                         r"settle_steps: 4 -> 2\. Pass the settings it was recorded with"):
        sim_to_dataset(root, "reach", 2, keep_failures=True, resume=True, settle_steps=2, seed=3, **_TINY)
    with pytest.raises(ValueError, match=r"was recorded with other settings: keep_failures: True -> False"):
        sim_to_dataset(root, "reach", 2, resume=True, **_TINY)
    with pytest.raises(ValueError, match=r"video_codec='libx264': the dataset at root=.* is encoded with "
                                         r"'libx264rgb', and a resumed recording continues it so; leave video_codec"):
        sim_to_dataset(root, "reach", 2, keep_failures=True, resume=True, video_codec="libx264", **_TINY)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before and _staged(tmp_path) == []


def test_the_old_dataset_stays_whole_until_the_resumed_one_replaces_it(tmp_path, monkeypatch):
    """Ctrl-C while the old episodes are copied, or before a new one is finished, and an error while one is added,
    leave the dataset as it was; Ctrl-C after a new one keeps the old and the new ones."""
    from worldpolicy.data import LeRobotDataset, LeRobotDatasetWriter
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset

    root = tmp_path / "ds"
    sim_to_dataset(root, "reach", 2, keep_failures=True, **_TINY)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def unchanged() -> bool:
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before

    _outcomes(monkeypatch, set(), stop_at=2)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, keep_failures=True, resume=True, **_TINY)
    assert caught.value.result is None and unchanged() and _staged(tmp_path) == []
    assert str(caught.value) == (f"interrupted before the first of the 2 episodes left was kept; the dataset in {root} "
                                 "is unchanged (2 of 4 episodes): rerun with resume=True to go on")

    real_add = LeRobotDatasetWriter.add_episode
    for failure in (KeyboardInterrupt, OSError):  # a copied episode (the first added), then a new one (the third)
        calls = []

        def add_episode(self, *args, failure=failure, calls=calls, **kwargs):
            calls.append(1)
            if len(calls) == (1 if failure is KeyboardInterrupt else 3):
                raise failure("stopped")
            return real_add(self, *args, **kwargs)

        monkeypatch.setattr(LeRobotDatasetWriter, "add_episode", add_episode)
        _outcomes(monkeypatch, set())
        with pytest.raises((RecordingInterrupted, OSError)):
            sim_to_dataset(root, "reach", 4, keep_failures=True, resume=True, **_TINY)
        assert unchanged() and _staged(tmp_path) == []
    monkeypatch.setattr(LeRobotDatasetWriter, "add_episode", real_add)

    _outcomes(monkeypatch, set(), stop_at=3)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, keep_failures=True, resume=True, **_TINY)
    assert caught.value.kept == 3 and caught.value.result.seeds == [0, 1, 2]
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 1, 2] and _staged(tmp_path) == []


def test_resume_on_the_command_line(tmp_path, capsys):
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.fileio import PROVENANCE_FILE, dataset_lock

    root = tmp_path / "ds"
    assert main(["dataset", "from-sim", str(root), "--episodes", "1", *_ARGV]) == 0
    capsys.readouterr()
    # the command rerun as typed: says how to go on
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", *_ARGV]) == 2
    assert (f"error: ROOT={str(root)!r} holds a `dataset from-sim` recording; pass --resume to continue it up to "
            "--episodes=2, --overwrite to replace it" in capsys.readouterr().err)
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", "--overwrite", *_ARGV]) == 2
    assert ("error: --resume: continues the dataset at root, --overwrite replaces it: pass one of them"
            in capsys.readouterr().err)
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", "--settle-steps", "1", *_ARGV]) == 2
    assert "error: --resume: " in (err := capsys.readouterr().err) and "settle_steps: 4 -> 1" in err
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", "--json", *_ARGV]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["seeds"] == [0, 1] and LeRobotDataset.open(root).num_episodes == 2
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", *_ARGV]) == 0
    err = capsys.readouterr().err  # said once: the library logged it too, so a user read it twice
    assert f"{root} already holds 2 episodes (--episodes 2): nothing to record" in err
    assert err.count("nothing to record") == 1, err
    with dataset_lock(root, "root", "`dataset from-sim`"):  # a recording into it still going: refused, untouched
        assert main(["dataset", "from-sim", str(root), "--episodes", "3", "--resume", *_ARGV]) == 2
    assert (f"error: ROOT: {str(root)!r} is in use by another worldpolicy process (PID {os.getpid()}, `dataset "
            "from-sim`, in ") in capsys.readouterr().err
    assert LeRobotDataset.open(root).num_episodes == 2

    assert main(["dataset", "from-sim", str(tmp_path / "none"), "--resume", *_ARGV]) == 2
    assert (f"error: --resume: ROOT={str(tmp_path / 'none')!r} holds no dataset to continue; leave --resume out"
            in capsys.readouterr().err)
    provenance = root / PROVENANCE_FILE  # a dataset made otherwise
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()),
                                      "source": "worldpolicy dataset import-hdf5"}))
    assert main(["dataset", "from-sim", str(root), "--episodes", "3", "--resume", *_ARGV]) == 2
    assert (f"error: --resume: ROOT={str(root)!r} holds a dataset `dataset import-hdf5` made, not a `dataset from-sim` "
            "recording"
            in capsys.readouterr().err)
    assert LeRobotDataset.open(root).num_episodes == 2


def test_a_policys_recording_resumes_as_one_run_and_its_settings_are_checked(tmp_path, monkeypatch):
    """--policy: the settings known before it loads are compared before anything records, those it reports once
    loaded (`policy_settings`) before a new episode is added."""
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset
    from worldpolicy.robot.control import ChunkStrategy
    from worldpolicy.sim import policies

    options = {**_TINY, "max_steps": 5, "policy": "random", "keep_failures": True, "seed": 7}
    whole = sim_to_dataset(tmp_path / "whole", "reach", 3, **options)
    root = tmp_path / "part"
    _outcomes(monkeypatch, None, stop_at=9)
    with pytest.raises(RecordingInterrupted):
        sim_to_dataset(root, "reach", 3, **options)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"^resume: .* other settings: strategy: .*'kind': 'execute'.* -> "
                                         r".*'kind': 'async'"):
        sim_to_dataset(root, "reach", 3, resume=True, strategy=ChunkStrategy("async"), **options)
    monkeypatch.setattr(policies.RandomPolicy, "version", policies.RandomPolicy.version + 1)
    with pytest.raises(ValueError, match=r"^resume: .* other settings: policy_settings.version: "):
        sim_to_dataset(root, "reach", 3, resume=True, **options)
    assert LeRobotDataset.open(root).provenance["seeds"] == [7, 8] and _staged(tmp_path) == []
    monkeypatch.undo()
    resumed = sim_to_dataset(root, "reach", 3, resume=True, **options)
    assert resumed.seeds == whole.seeds == [7, 8, 9]
    _same_episodes(whole.dataset, resumed.dataset)
    assert resumed.dataset.provenance == whole.dataset.provenance


def test_a_resumed_recording_whose_new_episodes_cannot_be_kept_counts_only_those(tmp_path, monkeypatch, caplog):
    """An error while recording, then one publishing what came before it (the disk still full): the warning counts
    the new episodes lost, not the old ones, which stay in the dataset as they were."""
    from worldpolicy.data import LeRobotDatasetWriter, from_sim
    from worldpolicy.data.from_sim import sim_to_dataset

    root = tmp_path / "ds"
    sim_to_dataset(root, "reach", 2, keep_failures=True, **_TINY)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    real = from_sim._Recorder.record

    def record(self, seed: int):
        if seed == 3:
            raise RuntimeError("the simulator crashed")
        return real(self, seed)

    def finalize(self):
        raise OSError("no space left on device")

    monkeypatch.setattr(from_sim._Recorder, "record", record)
    monkeypatch.setattr(LeRobotDatasetWriter, "finalize", finalize)
    with caplog.at_level("WARNING"), pytest.raises(RuntimeError, match="the simulator crashed"):
        sim_to_dataset(root, "reach", 4, keep_failures=True, resume=True, **_TINY)
    assert "the 1 episodes recorded before the error could not be kept either: no space left" in caplog.text
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert _staged(tmp_path) == []


def test_a_recording_a_killed_replacement_left_aside_is_resumed(tmp_path, killed_replacing):
    """A replacement of the recording killed between its renames leaves ROOT missing and the recording aside: resume
    continues it (the next reader of ROOT puts it back), not "holds no dataset to continue"."""
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import sim_to_dataset

    root = tmp_path / "rec"
    sim_to_dataset(root, "reach", 1, keep_failures=True, **_TINY)
    killed_replacing("from worldpolicy.data import write_episodes\nimport numpy as np\nwrite_episodes(sys.argv[2], "
                     "[dict(frames={'action': np.zeros((3, 2), np.float32)}, task='new')], fps=15, overwrite=True)",
                     1, str(root))
    assert not root.exists()
    resumed = sim_to_dataset(root, "reach", 2, keep_failures=True, resume=True, **_TINY)
    assert resumed.resumed == 1 and resumed.seeds == [0, 1]
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 1]


def test_a_lossy_recording_is_resumed_and_curated_without_encoding_its_episodes_again(tmp_path, monkeypatch):
    """In libx264 (lossy), the episodes a resumed recording, a select and a merge carry over are their encoded packets
    copied: their frames are the recording's as decoded, bit for bit (each re-encode changed them)."""
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset, merge_datasets, select_episodes
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset

    tiny = {**_TINY, "image_size": (24, 32), "video_codec": "libx264"}
    root = tmp_path / "part"
    _outcomes(monkeypatch, set(), stop_at=2)
    with pytest.raises(RecordingInterrupted):
        sim_to_dataset(root, "reach", 3, **tiny)
    part = LeRobotDataset.open(root)
    kept = [part.episode(i) for i in range(2)]
    _outcomes(monkeypatch, set())
    resumed = sim_to_dataset(root, "reach", 3, resume=True, **tiny).dataset
    assert resumed.features[resumed.video_keys[0]]["info"]["video.codec"] == "h264"
    picked = select_episodes(resumed, tmp_path / "picked", [1, 2])
    both = merge_datasets([resumed, picked.dataset], tmp_path / "both")
    for got, want in [(resumed.episode(0), kept[0]), (resumed.episode(1), kept[1]),
                      (picked.dataset.episode(0), kept[1]), (picked.dataset.episode(1), resumed.episode(2)),
                      (both.dataset.episode(4), resumed.episode(2))]:
        for key in want.videos:
            np.testing.assert_array_equal(got.videos[key], want.videos[key], err_msg=key)
    assert picked.videos.encoded == both.videos.encoded == 0
    assert main(["dataset", "check", str(tmp_path / "both")]) == 0


def test_a_recording_records_its_software_and_command_and_resumes_after_an_upgrade(tmp_path, capsys):
    """The provenance says what recorded it (`extras.run_record`): the software, the command line as typed (null from
    Python). A recording made on other software is continued, not refused, with a warning naming what changed, and
    the record says the resuming run's."""
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.extras import software_versions
    from worldpolicy.fileio import PROVENANCE_FILE

    root = tmp_path / "ds"
    assert main(["dataset", "from-sim", str(root), "--episodes", "1", *_ARGV]) == 0
    capsys.readouterr()
    recorded = LeRobotDataset.open(root).provenance
    assert recorded["software"] == software_versions() and recorded["cwd"] == os.getcwd()
    assert recorded["command"] == ("worldpolicy dataset from-sim " + str(root) + " --task reach --episodes 1 "
                                   "--image-size 24x24 --cameras observation/wrist_image_left --max-steps 3 "
                                   "--keep-failures --no-progress")
    provenance = root / PROVENANCE_FILE  # recorded before an upgrade of torch
    older = {**recorded["software"], "torch": "1.0.0"}
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()), "software": older,
                                      "command": "worldpolicy dataset from-sim elsewhere"}))
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", *_ARGV]) == 0
    err = capsys.readouterr().err
    assert f"{root} was recorded with other software: torch 1.0.0 -> {software_versions()['torch']};" in err
    resumed = LeRobotDataset.open(root).provenance
    assert resumed["software"] == software_versions() and resumed["command"].endswith("--no-progress")
    assert resumed["command"].replace("--episodes 2", "--episodes 1") == recorded["command"]


def test_a_checkpoints_recording_from_before_the_crop_was_recorded_resumes(tmp_path, tiny):
    """A recording whose `policy_settings` do not say `center_crop` (an older worldpolicy's, before it was recorded;
    its checkpoint trained without `[augment]`) continues after the upgrade: they are compared key by key, as
    `worldpolicy sim --resume` compares them, and a key the recording lacks is no change. The continued recording
    records it."""
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.fileio import PROVENANCE_FILE

    root = tmp_path / "ds"
    options = {**_TINY, "max_steps": 2, "policy": str(tiny), "keep_failures": True,
               "policy_options": {"steps": 1, "resolution_tier": 256}}
    sim_to_dataset(root, "reach", 1, **options)
    path = root / PROVENANCE_FILE
    older = json.loads(path.read_text())
    assert older["policy_settings"]["center_crop"] is None
    del older["policy_settings"]["center_crop"]
    path.write_text(json.dumps(older))
    resumed = sim_to_dataset(root, "reach", 2, resume=True, **options)
    assert resumed.seeds == [0, 1] and resumed.resumed == 1
    assert resumed.dataset.provenance["policy_settings"]["center_crop"] is None


def test_a_recording_of_a_centre_cropping_checkpoint_records_the_crop_and_refuses_another_on_resume(tmp_path, capsys):
    """A checkpoint whose training record says `[augment]` crops each frame's centre: the recording records the crop
    it ran with (`--no-center-crop`: none), and a resume with the other choice is refused, naming the setting,
    before an episode is added."""
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {"augment": {"enabled": True,
                                                                                           "crop_area": 0.9}}}))
    for flags, crop in (([], 0.9), (["--no-center-crop"], None)):
        root = tmp_path / f"ds{len(flags)}"
        assert main(["dataset", "from-sim", str(root), "--policy", str(ckpt), "--steps", "1", "--episodes", "1",
                     *_ARGV, *flags]) == 0
        made = LeRobotDataset.open(root).provenance
        assert made["policy_settings"]["center_crop"] == crop
        assert ("--no-center-crop" in made["command"]) == bool(flags)
    capsys.readouterr()
    assert main(["dataset", "from-sim", str(tmp_path / "ds0"), "--policy", str(ckpt), "--steps", "1", "--episodes",
                 "2", *_ARGV, "--no-center-crop", "--resume"]) == 2
    assert "other settings: policy_settings.center_crop: 0.9 -> None." in capsys.readouterr().err
    assert LeRobotDataset.open(tmp_path / "ds0").num_episodes == 1

"""`dataset from-sim` keeps its finished episodes as it goes (`lerobot.KeepSchedule`): a recording killed outright
(SIGKILL) leaves the last kept dataset, which `resume` continues to the dataset of one uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")

from test_data_from_sim_resume import _TINY, _outcomes, _same_episodes, _staged

# in a child process: every episode is kept (`KeepSchedule.due`), the expert fails seed 1, and the process kills itself
# (SIGKILL: nothing of it runs) once two keeps were made and a third episode is finished, unkept
_KILLED = """
import os, signal, sys
from worldpolicy.data import from_sim

real = from_sim._Recorder.record
def record(self, seed):
    episode = real(self, seed)
    episode["success"] = seed != 1
    return episode
from_sim._Recorder.record = record
calls = []
def due(self):
    calls.append(1)
    if len(calls) == 3:
        print("kept 2", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return True
from_sim.KeepSchedule.due = due
from_sim.sim_to_dataset(sys.argv[1], "reach", 4, image_size=(24, 24), max_steps=3,
                        cameras=["observation/wrist_image_left"])
"""


def test_a_killed_recording_resumes_from_its_last_keep_to_one_uninterrupted_run(tmp_path, monkeypatch):
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import sim_to_dataset

    _outcomes(monkeypatch, {1})
    whole = sim_to_dataset(tmp_path / "whole", "reach", 4, **_TINY)
    assert whole.seeds == [0, 2, 3, 4] and whole.failed_seeds == [1]

    root = tmp_path / "killed"
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED), str(root)], check=False,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout == "kept 2\n"
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 2]  # seed 3's episode was staged, not kept
    assert _staged(tmp_path)  # the killed process's staging and frames, swept by the resume

    resumed = sim_to_dataset(root, "reach", 4, resume=True, **_TINY)
    assert resumed.resumed == 2 and resumed.seeds == whole.seeds and resumed.failed_seeds == whole.failed_seeds
    _same_episodes(LeRobotDataset.open(tmp_path / "whole"), resumed.dataset)
    assert resumed.dataset.provenance == whole.dataset.provenance
    assert _staged(tmp_path) == []


def test_ctrl_c_after_a_keep_keeps_it_and_an_existing_dataset_is_not_replaced_by_one(tmp_path, monkeypatch):
    from worldpolicy.data import LeRobotDataset, from_sim
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset

    monkeypatch.setattr(from_sim.KeepSchedule, "due", lambda self: True)
    root = tmp_path / "ds"
    _outcomes(monkeypatch, {1}, stop_at=3)  # seed 0 kept, 1 failed, 2 kept; Ctrl-C while seed 3 records
    kept = []
    real_finalize = from_sim.LeRobotDatasetWriter.finalize

    def finalize(self):
        kept.append(len(self._rows))
        return real_finalize(self)

    monkeypatch.setattr(from_sim.LeRobotDatasetWriter, "finalize", finalize)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, **_TINY)
    assert kept == [1, 2]  # a keep after each episode; the interruption found nothing new to publish
    assert caught.value.kept == 2 and caught.value.result.seeds == [0, 2] and caught.value.result.failed_seeds == [1]
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 2] and _staged(tmp_path) == []

    # overwrite: the dataset at root is replaced only by a complete recording, never by a keep
    kept.clear()
    _outcomes(monkeypatch, set(), stop_at=2)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, overwrite=True, keep_failures=True, **_TINY)
    assert kept == [] and caught.value.result is None
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 2] and _staged(tmp_path) == []


def _disk_full_after(monkeypatch, stagings: int) -> None:
    """The dataset writer's staging folders after the first `stagings` are not made (the disk full): a keep then fails
    after its publish, where it goes on writing into a new staging (`LeRobotDatasetWriter.keep`)."""
    import errno

    from worldpolicy.data import lerobot

    made = []

    class Full(lerobot.ScratchFolder):
        def make(self):
            made.append(self.path)
            if len(made) > stagings:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().make()

    monkeypatch.setattr(lerobot, "ScratchFolder", Full)


def test_a_keep_failing_after_its_publish_says_the_episodes_it_published_are_kept(tmp_path, monkeypatch, caplog):
    """A keep that published and then failed going on (the disk full) left its episodes at root, but the recording's
    error said nothing of them (the writer taken as holding a half-added episode): the last keep's are said kept."""
    import logging

    from worldpolicy.data import LeRobotDataset, from_sim
    from worldpolicy.data.from_sim import sim_to_dataset

    monkeypatch.setattr(from_sim.KeepSchedule, "due", lambda self: True)
    _outcomes(monkeypatch, set())
    _disk_full_after(monkeypatch, 2)  # the writer's, the first keep's: the second keep fails after publishing 2
    root = tmp_path / "ds"
    with caplog.at_level(logging.WARNING), pytest.raises(OSError, match="No space left"):
        sim_to_dataset(root, "reach", 4, **_TINY)
    assert LeRobotDataset.open(root).provenance["seeds"] == [0, 1]
    assert "2 of 4 episodes recorded before the error are kept in" in caplog.text
    assert _staged(tmp_path) == []

"""Output folders: which kind of thing a folder holds, and the refusal of one that holds another kind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from worldpolicy.fileio import RUN_WRITERS, folder_kind, output_folder, refuse_foreign_folder

KINDS = {  # a marker each command (or checkpoint/dataset) leaves → what the folder is called
    "model_index.json": "a diffusers checkpoint",
    "base_model.json": "a LoRA adapter checkpoint",
    "meta/info.json": "a LeRobot dataset",
    "metrics.jsonl": "a training run",
    "checkpoints/step-*/trainer_state.json": "a training run",
    "summary.json": "a from-scratch recipe run",
    "report.json": "a sim run",
    "dream.json": "a dream run",
    "actions.json": "a predict run",
    "animation.mp4": "viz plots",
}


def _make(folder, marker: str):
    path = folder / marker.replace("*", "0000002")
    if marker.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return folder


@pytest.mark.parametrize("marker,what", KINDS.items())
def test_each_kind_is_told_by_its_marker(tmp_path, marker, what):
    found = folder_kind(_make(tmp_path / "f", marker))
    assert found is not None and found[0].what == what and found[1] == marker.rstrip("/")


def test_new_empty_and_unknown_folders_have_no_kind(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    for path in (tmp_path / "missing", tmp_path, tmp_path / "other", tmp_path / "other" / "notes.txt"):
        assert folder_kind(path) is None
    # a user's project: its own config.json, settings.json and checkpoints/ are no run of ours
    project = _make(_make(_make(tmp_path / "project", "config.json"), "settings.json"), "checkpoints/")
    assert folder_kind(project) is None
    assert output_folder(project, "--out", writer="sim") == project


def test_a_folder_next_to_a_checkpoint_spelled_with_dotdot_is_not_inside_it(tmp_path, monkeypatch):
    checkpoint = _make(tmp_path / "ckpt", "model_index.json")
    monkeypatch.chdir(checkpoint)
    assert output_folder("../pred", "--out", writer="predict").resolve() == tmp_path / "pred"
    assert output_folder(checkpoint / ".." / "sim", "--out", writer="sim").is_dir()


def test_a_command_writes_into_its_own_kind_only(tmp_path):
    sim = _make(tmp_path / "sim", "report.json")
    assert output_folder(sim, "--out", writer="sim") == sim  # a rerun into its own folder
    assert output_folder(tmp_path / "new", "--out", writer="sim").is_dir()  # a new one is made
    with pytest.raises(ValueError) as refused:
        output_folder(sim, "--out", writer="predict")
    assert str(refused.value) == (
        f"--out: {str(sim)!r} holds a sim run (report.json), not a predict run; writing there would mix this run's "
        "files into it and could replace some of its own: choose another --out (a new or empty folder)")
    assert not (sim / "actions.json").exists()


def test_predict_does_not_write_over_a_folder_of_runs(tmp_path):
    """`predict --out runs/demo` wrote its actions.json and index.html in among the demo's runs; a rerun into one of
    them, a new folder, and a folder of no runs are still taken."""
    demo = tmp_path / "demo"
    _make(demo / "policy", "actions.json")
    _make(demo / "sim", "report.json")
    with pytest.raises(ValueError) as refused:
        output_folder(demo, "--out", writer="predict", not_over_runs=True)
    assert str(refused.value) == (
        f"--out: {str(demo)!r} holds other runs in its subfolders ({str(demo / 'policy')!r}: a predict run "
        f"(actions.json); {str(demo / 'sim')!r}: a sim run (report.json)); this run's files would be mixed in among "
        f"them: choose another --out (a new or empty folder, or {str(demo / 'policy')!r} itself to rerun into that "
        "run)")
    assert not (demo / "actions.json").exists()
    assert output_folder(demo / "policy", "--out", writer="predict", not_over_runs=True) == demo / "policy"
    assert output_folder(demo / "new", "--out", writer="predict", not_over_runs=True).is_dir()
    mine = _make(tmp_path / "mine" / "notes", "config.json")  # a user's folder, no run of ours
    assert output_folder(mine.parent, "--out", writer="predict", not_over_runs=True) == mine.parent
    _make(demo / "policy" / "plots", "actions.png")  # a predict run's own plots/ does not make it a folder of runs
    assert output_folder(demo / "policy", "--out", writer="predict", not_over_runs=True) == demo / "policy"
    assert output_folder(demo, "--out", writer="sim") == demo  # opt-in: the other writers are unchanged


def test_nothing_is_written_inside_a_checkpoint_or_a_dataset(tmp_path):
    checkpoint = _make(tmp_path / "ckpt", "model_index.json")
    _make(checkpoint / "transformer", "config.json")  # looks like a training run by itself
    for writer in RUN_WRITERS:
        with pytest.raises(ValueError, match=r"--out: '.*transformer' is inside '.*ckpt', which holds a diffusers "
                                             r"checkpoint \(model_index.json\); choose another --out outside it"):
            output_folder(checkpoint / "transformer", "--out", writer=writer)
    dataset = _make(tmp_path / "ds", "meta/info.json")
    with pytest.raises(ValueError, match="which holds a LeRobot dataset"):
        output_folder(dataset / "plots", "--out", writer="viz")
    assert not (dataset / "plots").exists()
    with pytest.raises(ValueError, match=r"holds a LeRobot dataset \(meta/info.json\), not a training run, .* or viz "
                                         r"plots; .*: choose another run_dir$"):
        refuse_foreign_folder(dataset, "run_dir", RUN_WRITERS)


def test_a_failed_command_removes_only_the_empty_folders_it_made(tmp_path):
    from worldpolicy.fileio import make_folder, removing_empty_folders_on_failure, write_json_atomic

    (tmp_path / "theirs").mkdir()  # the user's, empty: kept
    with pytest.raises(RuntimeError), removing_empty_folders_on_failure():
        output_folder(tmp_path / "new" / "deep" / "run", "--out")
        make_folder(tmp_path / "new" / "deep" / "run" / "videos")
        output_folder(tmp_path / "theirs", "--out")
        write_json_atomic(tmp_path / "partial" / "report.json", {"episodes": 1})  # a partial result: kept
        raise RuntimeError("failed mid-run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial", "theirs"]
    assert (tmp_path / "partial" / "report.json").is_file()
    with removing_empty_folders_on_failure():  # a run that succeeds keeps what it made, even empty
        output_folder(tmp_path / "ok", "--out")
    assert (tmp_path / "ok").is_dir()
    make_folder(tmp_path / "outside")  # outside a command nothing is tracked or removed
    assert (tmp_path / "outside").is_dir()


def test_json_files_are_named_when_missing_broken_or_binary(tmp_path):
    """Spec, stats and actions files share one reader (`fileio.read_json`); a binary file was an unnamed
    UnicodeDecodeError from the spec, stats and --actions readers."""
    from worldpolicy.embodiments import get_embodiment, read_spec_file
    from worldpolicy.embodiments.normalization import load_stats_file
    from worldpolicy.processing.actions import load_actions

    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FileNotFoundError, match=r"embodiment file '.*gone.json' does not exist"):
        read_spec_file(tmp_path / "gone.json")
    with pytest.raises(ValueError, match=r"stats file '.*broken.json' is not valid JSON"):
        load_stats_file(tmp_path / "broken.json", "quantile")
    with pytest.raises(ValueError, match=r"embodiment file '.*binary.json' is not valid JSON"):
        read_spec_file(tmp_path / "binary.json")
    with pytest.raises(ValueError, match=r"actions file '.*binary.json' is not valid JSON"):
        load_actions(str(tmp_path / "binary.json"), get_embodiment("bridge"))
    (tmp_path / "folder.json").mkdir()  # a folder where the file goes was Python's IsADirectoryError, a traceback
    with pytest.raises(ValueError, match=r"embodiment file '.*folder.json' is a folder; accepted: a JSON file"):
        get_embodiment(tmp_path / "folder.json")
    with pytest.raises(ValueError,
                       match=r"actions file '.*folder.json' is a folder; accepted: an actions file \(.json, "):
        load_actions(str(tmp_path / "folder.json"), get_embodiment("bridge"))  # was said not to exist


def test_a_staged_folder_replaces_the_old_one_only_when_it_is_complete(tmp_path):
    """A checkpoint or the recipe's model/ is written whole or not at all: a failure (an error, Ctrl-C, SIGTERM)
    mid-write keeps the earlier folder as it was and leaves no staging folder; a success replaces it, shared like
    any other output (not mkdtemp's 0700). The recipe's model/ was exported in place, half written when stopped."""
    import os
    import stat

    from worldpolicy.fileio import staged_folder

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt), staged_folder(final) as staging:
        (staging / "half.safetensors").write_bytes(b"\0" * 8)
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in final.iterdir()) == ["old.json"]
    with staged_folder(final) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "new.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(str(p.relative_to(final)) for p in final.rglob("*")) == ["sub", "sub/new.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~umask


def test_held_signals_are_ctrl_c_and_the_command_lines_sigterm_never_an_ignored_one(default_sigterm):
    """`sigint_held` holds Ctrl-C, and SIGTERM where the command line made it one (`terminating_as_interrupt`); a
    SIGINT that is ignored (a job started in the background, nohup) was held too and then stopped the command."""
    import os
    import signal

    from worldpolicy.fileio import Terminated, interruption, sigint_held, terminating_as_interrupt

    with terminating_as_interrupt(), sigint_held() as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert caught == [signal.SIGTERM, signal.SIGINT] and isinstance(interruption(caught), Terminated)
    assert type(interruption([signal.SIGINT])) is KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with sigint_held() as caught:
        os.kill(os.getpid(), signal.SIGINT)
    assert caught == [] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_slurms_sigusr1_is_held_and_stops_the_command_as_sigterm_does_with_its_own_status(default_sigterm):
    """Slurm warns a job ahead of its end with SIGUSR1 where it asks (`sbatch --signal=USR1@120`); its default action
    killed the command at once, nothing saved. On the command line it is now a `Terminated` as SIGTERM is: held while
    a block finishes, named in the notice, and the exit status is 128 + the signal (138), so a job script tells it
    from SIGTERM's 143 and Ctrl-C's 130."""
    import os
    import signal

    from worldpolicy.fileio import Terminated, exit_status, interruption, sigint_held, terminating_as_interrupt

    with terminating_as_interrupt():
        with sigint_held() as caught:
            os.kill(os.getpid(), signal.SIGUSR1)
        stop = interruption(caught)
        with pytest.raises(Terminated) as raised:
            os.kill(os.getpid(), signal.SIGUSR1)
    assert caught == [signal.SIGUSR1] and isinstance(stop, Terminated) and raised.value.signum == signal.SIGUSR1
    assert exit_status(stop) == 138 and exit_status(Terminated()) == 143 and exit_status(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_how_a_run_stopped_is_worded_once_the_interruption_the_signal_or_the_failure(tmp_path):
    """The command's last line, its log's and `sim`'s, its sweep's and `dream`'s "... after N of M finished" say how it
    stopped in one wording (`fileio.how_stopped`): Ctrl-C (or a stop carrying it) "interrupted", a scheduler's SIGTERM
    or SIGUSR1 "terminated (SIGTERM)", else "failed"; the line of a Ctrl-C before the command starts says it too."""
    import signal

    from worldpolicy.__main__ import INTERRUPTED
    from worldpolicy.data.label import LabelInterrupted
    from worldpolicy.fileio import Terminated, how_stopped

    assert how_stopped(KeyboardInterrupt()) == "interrupted"
    assert how_stopped(Terminated()) == "terminated (SIGTERM)"
    assert how_stopped(Terminated(signal.SIGUSR1)) == "terminated (SIGUSR1)"
    assert how_stopped(LabelInterrupted(tmp_path, tmp_path, 3, 1, 0, signum=signal.SIGTERM)) == "terminated (SIGTERM)"
    assert how_stopped(LabelInterrupted(tmp_path, tmp_path, 3, 1, 0)) == "interrupted"
    assert how_stopped(RuntimeError("the policy server went away")) == "failed"
    assert INTERRUPTED == f"worldpolicy: {how_stopped(KeyboardInterrupt())}"  # kept there without importing this


def test_a_deferred_signal_stops_once_the_block_has_finished(default_sigterm):
    """`sigint_deferred`: the block runs to its end under a Ctrl-C (SIGTERM), which then stops the command as the
    signal that came; a block with no signal ends as usual, and an error in the block is raised as it came."""
    import os
    import signal

    from worldpolicy.fileio import Terminated, sigint_deferred, terminating_as_interrupt

    finished = []
    with pytest.raises(KeyboardInterrupt) as stop, sigint_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(1)
    assert finished == [1] and type(stop.value) is KeyboardInterrupt
    with pytest.raises(Terminated), terminating_as_interrupt(), sigint_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        finished.append(2)
    assert finished == [1, 2]
    with sigint_deferred():
        finished.append(3)
    with pytest.raises(OSError, match="disk full"), sigint_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        raise OSError("disk full")
    assert finished == [1, 2, 3] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("mask", [0o077, 0o022, 0o002])
def test_atomic_writes_get_the_mode_the_umask_gives(tmp_path, mask):
    """An atomic write's file was made 0644 whatever the umask: a user keeping outputs private (umask 077) had every
    actions.json, report and settings file readable by all, and a group-shared folder (umask 002) lost group write."""
    import os
    import stat

    from worldpolicy.fileio import umask, write_json_atomic

    before = os.umask(mask)
    try:
        assert umask() == mask
        written = write_json_atomic(tmp_path / "out" / "doc.json", {"a": 1})
    finally:
        os.umask(before)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in written.parent.iterdir()) == ["doc.json"]  # no temp file left beside it


@pytest.mark.parametrize("mask", [0o077, 0o002])
def test_videos_get_the_mode_the_umask_gives(tmp_path, mask):
    """Videos (rollout.mp4, a dataset's mp4s) are written through their own temp file, and were made 0644 whatever the
    umask, as atomic writes were."""
    import os
    import stat

    import numpy as np

    from worldpolicy.processing.video import write_video

    before = os.umask(mask)
    try:
        written = write_video(tmp_path / "clip.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=15)
    finally:
        os.umask(before)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~mask


def test_a_durable_staged_folder_is_on_the_disk_before_it_takes_its_name(tmp_path, synced_paths):
    """A training checkpoint was renamed into place, and the older ones deleted, with its files possibly still in the
    OS's cache: a node lost then (power, a crash) could leave the newest checkpoint's files empty and no older one.
    `durable` flushes every file and folder of it before the rename, and the folder naming it after."""
    from worldpolicy.fileio import staged_folder

    synced = synced_paths
    final = tmp_path / "checkpoints" / "step-0000002"
    with staged_folder(final, durable=True) as staging:
        (staging / "transformer").mkdir()
        (staging / "transformer" / "weights.safetensors").write_bytes(b"w")
        (staging / "trainer_state.json").write_text("{}")
        assert synced == []
    before = [os.path.relpath(path, staging) for path in synced[:-1]]
    assert sorted(before) == [".", "trainer_state.json", "transformer", "transformer/weights.safetensors"]
    assert synced[-1] == str(final.parent)  # the rename, after it
    synced.clear()
    with staged_folder(tmp_path / "other") as staging:  # not asked: nothing waits for the disk
        (staging / "a.json").write_text("{}")
    assert synced == [] and (tmp_path / "other" / "a.json").exists()


def test_a_staged_folder_replacing_an_earlier_one_survives_an_interrupted_removal(tmp_path, monkeypatch):
    """The earlier folder was deleted before the new one took its name: a Ctrl-C while a large one was deleted left it
    half gone and removed the new one too. It now goes aside in one rename and is deleted after: the new one stays."""
    import shutil

    from worldpolicy import fileio
    from worldpolicy.fileio import staged_folder

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_text("{}")
    real_rmtree = shutil.rmtree

    def interrupted(path, *args, **kwargs):
        if (Path(path) / "old.json").exists():  # the earlier folder's removal
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(fileio.shutil, "rmtree", interrupted)
    try:
        with staged_folder(final) as staging:
            (staging / "new.json").write_text("{}")
    except KeyboardInterrupt:
        pass
    assert sorted(p.name for p in final.iterdir()) == ["new.json"]


def test_a_staged_folder_that_cannot_take_the_name_puts_the_earlier_one_back(tmp_path, monkeypatch):
    from worldpolicy import fileio
    from worldpolicy.fileio import staged_folder

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_text("{}")
    real_replace = fileio.os.replace

    def refused(src, dst):
        if Path(dst) == final and (Path(src) / "new.json").exists():  # the new folder taking the name
            raise OSError("no")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", refused)
    with pytest.raises(OSError), staged_folder(final) as staging:
        (staging / "new.json").write_text("{}")
    assert sorted(p.name for p in final.iterdir()) == ["old.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # neither the new nor an aside left beside it


def test_a_held_run_folder_is_refused_with_the_holders_pid_and_free_once_the_run_ends(tmp_path):
    """flock locks belong to an open file: a second open of the lock file conflicts, as another process's would."""
    import re

    from worldpolicy.fileio import LOCK_FILE, folder_kind, folder_lock

    out = tmp_path / "run"
    with folder_lock(out, "--out") as lock:
        assert lock == out / LOCK_FILE and lock.read_text() == f"{os.getpid()}\n"
        assert folder_kind(out) is None  # the lock file marks no kind of folder
        held = re.escape(f"--out: {str(out)!r} is in use by another worldpolicy process (PID {os.getpid()}, in "
                         f"{str(lock)!r})")
        with pytest.raises(ValueError, match=held), folder_lock(out, "--out"):
            pass
    assert not out.exists()  # released; the folder it made, in which nothing was written, removed as a failed run's
    with folder_lock(out, "--out"):
        (out / "report.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["report.json"]  # the run's files, nothing more
    with folder_lock(out, "--out"):
        (out / "report.json").unlink()
    assert out.is_dir()  # a folder that was there before stays


def test_a_lock_file_a_killed_run_left_is_taken_over(tmp_path):
    """SIGKILL leaves the file (the OS drops the lock itself): the next run takes the folder."""
    import subprocess

    from worldpolicy.fileio import LOCK_FILE, folder_lock

    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text("12345\n")
    hold = ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ValueError, match=r"in use by another worldpolicy process \(PID 12345,"), \
                folder_lock(out, "--out"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(out, "--out") as lock:
        assert lock.read_text() == f"{os.getpid()}\n"


def test_a_dataset_is_held_by_a_lock_file_beside_it_that_its_replacement_keeps(tmp_path):
    """A dataset is published by renaming a staged folder over it (`replace_folder`): a lock file inside would go with
    the folder it replaces. Beside it, `.NAME.lock`, it holds through the swap and puts nothing in the dataset; a
    second holder is refused with the holder's PID and command, and `folder_holder` (push) sees it."""
    import re

    from worldpolicy.fileio import dataset_lock, folder_holder, staged_folder

    out = tmp_path / "data" / "out"
    command = "`dataset label`"
    with dataset_lock(out, "out", command) as lock:
        assert lock == tmp_path / "data" / ".out.lock" and lock.read_text() == f"{os.getpid()}\n{command}\n"
        assert not out.exists()  # nothing made inside the dataset (nor the dataset) by the lock
        held = re.escape(f"out: {str(out)!r} is in use by another worldpolicy process (PID {os.getpid()}, {command}, "
                         f"in {str(lock)!r}); two commands writing one dataset each publish their own")
        for _ in range(2):  # before and after the dataset is replaced whole
            with pytest.raises(ValueError, match=held), dataset_lock(out, "out", "`dataset select`"):
                pass
            holder = folder_holder(out)
            assert (holder.pid, holder.command, holder.lock) == (str(os.getpid()), command, lock)
            with staged_folder(out) as staging:
                (staging / "info.json").write_text("{}")
        assert sorted(p.name for p in out.iterdir()) == ["info.json"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["out"]  # the lock file gone with the hold
    assert folder_holder(out) is None


def test_a_linked_dataset_is_held_by_one_lock_beside_its_target(tmp_path, monkeypatch):
    """The dataset writer publishes a linked root (a data folder on a bigger disk) at its target: a command given the
    link and one given the target, or `.` inside it, named two lock files and both wrote; one lock, beside the target,
    which `push` of any of these names sees."""
    from worldpolicy.fileio import dataset_lock, folder_holder

    target = tmp_path / "big" / "real"
    target.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(target)
    with dataset_lock(link, "out", "`dataset label`") as lock:
        assert lock == tmp_path / "big" / ".real.lock"
        with pytest.raises(ValueError, match="is in use by another worldpolicy process"), \
                dataset_lock(target, "out", "`dataset select`"):
            pass
        monkeypatch.chdir(target)
        assert folder_holder(link).lock == folder_holder(target).lock == folder_holder(".").lock == lock
    assert link.is_symlink() and not lock.exists() and sorted(p.name for p in (tmp_path / "big").iterdir()) == ["real"]


@pytest.mark.parametrize("stop", [ValueError, KeyboardInterrupt])
def test_a_dataset_hold_ends_with_an_error_or_ctrl_c_and_leaves_no_folder_it_made(tmp_path, stop):
    from worldpolicy.fileio import dataset_lock

    out = tmp_path / "new" / "deep" / "out"
    with pytest.raises(stop), dataset_lock(out, "out", "`dataset merge`"):
        raise stop()
    assert list(tmp_path.iterdir()) == []  # the lock file gone, and the parents it made for it
    with dataset_lock(out, "out", "`dataset merge`"):  # free again
        pass


def test_a_dataset_under_a_file_is_refused_naming_the_flag(tmp_path):
    from worldpolicy.fileio import dataset_lock

    (tmp_path / "notes").write_text("x")
    refused = r"^root: .*/notes/out' is under .*/notes', which is a file; choose another root$"
    with pytest.raises(ValueError, match=refused), dataset_lock(tmp_path / "notes" / "out", "root", "`from-sim`"):
        pass


def test_a_dataset_lock_a_killed_command_left_blocks_nothing_and_is_swept(tmp_path):
    """SIGKILL leaves `.NAME.lock` (the OS drops the lock itself): the next command takes it over, and the sweep every
    writer and reader of NAME runs removes it, never a live holder's."""
    import signal
    import subprocess

    import worldpolicy
    from worldpolicy.fileio import dataset_lock, dataset_lock_file, folder_holder, sweep_scratch_folders

    out = tmp_path / "out"
    hold = ("import sys, time; from worldpolicy.fileio import dataset_lock\n"
            "with dataset_lock(sys.argv[1], 'out', '`dataset label`'):\n"
            "    print('held', flush=True); time.sleep(600)")
    env = {**os.environ, "PYTHONPATH": str(Path(worldpolicy.__file__).parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ValueError, match=rf"in use by another worldpolicy process \(PID {holder.pid}, "
                                             r"`dataset label`, in "), dataset_lock(out, "out", "`dataset select`"):
            pass
        sweep_scratch_folders(out, ())
        assert folder_holder(out).pid == str(holder.pid)  # a live holder's file is not swept
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = dataset_lock_file(out)
    assert lock.read_text() == f"{holder.pid}\n`dataset label`\n" and folder_holder(out) is None  # stale
    with dataset_lock(out, "out", "`dataset select`"):  # taken over
        assert lock.read_text() == f"{os.getpid()}\n`dataset select`\n"
    lock.write_text(f"{holder.pid}\n`dataset label`\n")  # left again
    sweep_scratch_folders(out, ())
    assert not lock.exists()


def test_a_file_system_without_locks_runs_unlocked(tmp_path, monkeypatch):
    import errno
    import fcntl

    from worldpolicy.fileio import folder_lock

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with folder_lock(tmp_path / "run", "--out"):
        pass
    assert not (tmp_path / "run").exists()  # nor its lock file


@pytest.mark.parametrize("target", ["missing/lock", "precious.txt"])
def test_a_lock_file_that_is_a_symbolic_link_is_refused_not_followed(tmp_path, target):
    """O_CREAT followed it: a dangling link looped for ever (the folder made again and again), a link to a file
    had that file truncated to the holder's PID."""
    from worldpolicy.fileio import LOCK_FILE, folder_lock

    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("keep me")
    (out / LOCK_FILE).symlink_to(tmp_path / target)
    with pytest.raises(ValueError, match=r"^--out: .* is a symbolic link, .*remove it and run again"), \
            folder_lock(out, "--out"):
        pass
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert (out / LOCK_FILE).is_symlink() and not (tmp_path / "missing").exists()


def _read_only_lock(tmp_path, monkeypatch):
    """A run folder holding a read-only lock file, left by a run, that os.open refuses to write. Run as root the file
    opens anyway, so there the refusal os.open gives a non-root user is made by hand: the tests check the message
    either way, never skipped."""
    from worldpolicy import fileio
    from worldpolicy.fileio import LOCK_FILE

    out = tmp_path / "run"
    out.mkdir()
    lock = out / LOCK_FILE
    lock.write_text("12345\n")
    lock.chmod(0o444)
    if os.geteuid() == 0:  # root opens any file: refuse as the OS refuses another user
        real_open = os.open

        def refused(file, flags, *args, **kwargs):
            if Path(file) == lock and flags & os.O_RDWR:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(fileio.os, "open", refused)
    return out, lock


def test_a_lock_file_another_user_left_read_only_is_named_with_its_owner_and_the_fix(tmp_path, monkeypatch):
    """A stale lock file of another user's run, read-only to us, was a bare "Permission denied" traceback."""
    import pwd

    from worldpolicy import fileio
    from worldpolicy.fileio import folder_lock

    out, lock = _read_only_lock(tmp_path, monkeypatch)
    owner = pwd.getpwuid(lock.stat().st_uid).pw_name
    monkeypatch.setattr(fileio.os, "geteuid", lambda: lock.stat().st_uid + 1)  # the file is another user's
    with pytest.raises(ValueError) as caught, folder_lock(out, "--out"):
        pass
    said = str(caught.value)
    assert said.startswith(f"--out: the lock file {str(lock)!r}") and f"belongs to user {owner!r}" in said
    assert f"If no run is using {str(out)!r} now, remove the file (rm {str(lock)!r}" in said
    assert lock.read_text() == "12345\n" and out.is_dir()  # nothing of it removed: it is not ours


def test_a_read_only_lock_file_of_our_own_is_named_not_writable_with_the_fix(tmp_path, monkeypatch):
    """Our own lock file made read-only (a chmod, a copy) was blamed on "a run of theirs" by "user 'me'"."""
    from worldpolicy.fileio import folder_lock

    out, lock = _read_only_lock(tmp_path, monkeypatch)
    assert lock.stat().st_uid == os.geteuid()
    with pytest.raises(ValueError) as caught, folder_lock(out, "--out"):
        pass
    said = str(caught.value)
    assert said.startswith(f"--out: the lock file {str(lock)!r}")
    assert "belongs to this user but is not writable (mode 444)" in said and "a run of theirs" not in said
    assert f"If no run is using {str(out)!r} now, remove the file (rm {str(lock)!r}) or make it writable " \
           f"(chmod u+w {str(lock)!r})" in said
    assert lock.read_text() == "12345\n" and out.is_dir()  # the user's to decide: nothing of it touched


def test_a_run_folder_we_may_not_write_in_is_named(tmp_path, monkeypatch):
    from worldpolicy import fileio
    from worldpolicy.fileio import folder_lock

    out = tmp_path / "run"
    out.mkdir()

    real_open = os.open

    def refused(file, flags, *args, **kwargs):  # as for a folder of another user's (root writes in any)
        if Path(file).parent == out:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "open", refused)
    with pytest.raises(ValueError, match=r"^--out: '.*/run' is not writable by this user \(the lock file "), \
            folder_lock(out, "--out"):
        pass


STAGE_NEW = """
from worldpolicy.fileio import staged_folder
with staged_folder(sys.argv[2]) as staging:
    (staging / "new.json").write_text("{}")
"""


def test_a_replacement_killed_between_its_renames_is_restored_by_the_next_writer(tmp_path, caplog,
                                                                                 killed_replacing):
    """A kill between the two renames (SIGKILL, power) left NAME missing and the earlier folder hidden in a `.NAME.*`
    folder nobody looked for: the next writer now puts it back first, and a reader of NAME finds it there."""
    from worldpolicy.fileio import REPLACED_KIND, staged_folder, sweep_scratch_folders

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_text("{}")
    killed_replacing(STAGE_NEW, 1, str(final))
    assert not final.exists()
    (aside,) = tmp_path.glob(f".model.{REPLACED_KIND}-*")
    assert (aside / "previous" / "old.json").is_file()  # nothing lost: aside, whole
    with caplog.at_level("WARNING", logger="worldpolicy.fileio"):
        assert sweep_scratch_folders(final, ()) == []  # a reader of NAME: nothing removed, the earlier one back
    assert sorted(p.name for p in final.iterdir()) == ["old.json"] and not aside.exists()
    assert f"restored {final}" in caplog.text
    with pytest.raises(KeyboardInterrupt), staged_folder(final) as staging:  # a writer stopped: the earlier one stays
        raise KeyboardInterrupt
    assert sorted(p.name for p in final.iterdir()) == ["old.json"]

    killed_replacing(STAGE_NEW, 1, str(final))
    with staged_folder(final) as staging:  # the next writer: restores, then replaces as it would have
        (staging / "newer.json").write_text("{}")
    assert sorted(p.name for p in final.iterdir()) == ["newer.json"]
    assert [p.name for p in tmp_path.glob(f".model.{REPLACED_KIND}-*")] == []


def test_a_replacement_killed_after_its_renames_leaves_an_aside_the_next_run_removes(tmp_path, caplog,
                                                                                     killed_replacing):
    """After both renames NAME is the new folder and the earlier one waits to be deleted: such `.NAME.replaced-*`
    folders were never swept. The next run removes it, as the new one at NAME is the one that replacement put there."""
    from worldpolicy.fileio import REPLACED_KIND, sweep_scratch_folders

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_bytes(b"\0" * 1000)
    killed_replacing(STAGE_NEW, 2, str(final))
    (aside,) = tmp_path.glob(f".model.{REPLACED_KIND}-*")
    assert sorted(p.name for p in final.iterdir()) == ["new.json"]
    with caplog.at_level("WARNING", logger="worldpolicy.fileio"):
        removed = sweep_scratch_folders(final, ())
    assert [path for path, _ in removed] == [aside] and removed[0][1] >= 1000 and not aside.exists()
    assert sorted(p.name for p in final.iterdir()) == ["new.json"]
    assert "killed" in caplog.text


def test_an_aside_whose_name_holds_another_folder_is_kept_with_the_commands_to_choose(tmp_path, caplog,
                                                                                      killed_replacing):
    """NAME made again since the kill (by hand, by another tool) is not the folder the replacement put there: the
    earlier one is neither deleted nor put over it; the warning names the exact commands, and they work."""
    import subprocess

    from worldpolicy.fileio import REPLACED_KIND, sweep_scratch_folders

    final = tmp_path / "my model"  # a name the shell must quote
    final.mkdir()
    (final / "old.json").write_text("{}")
    killed_replacing(STAGE_NEW, 1, str(final))
    final.mkdir()
    (final / "mine.txt").write_text("made since")
    (aside,) = tmp_path.glob(f".my model.{REPLACED_KIND}-*")
    with caplog.at_level("WARNING", logger="worldpolicy.fileio"):
        assert sweep_scratch_folders(final, ()) == []
    assert (aside / "previous" / "old.json").is_file() and (final / "mine.txt").is_file()
    command = caplog.text.split("in place of the current one: ")[1].split("; to discard it")[0]
    subprocess.run(command, shell=True, check=True)
    assert sorted(p.name for p in final.iterdir()) == ["old.json"]


def test_a_replacement_in_progress_is_never_settled_under_it(tmp_path, monkeypatch):
    """The aside is a `ScratchFolder`, held while the replacement runs: a sweep between its renames (another
    process's writer or reader of NAME) neither restores nor removes anything."""
    from worldpolicy import fileio
    from worldpolicy.fileio import staged_folder, sweep_scratch_folders

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_text("{}")
    real_replace, swept = fileio.os.replace, []

    def sweeping(src, dst):
        real_replace(src, dst)
        if Path(dst).name == "previous":
            swept.append(sweep_scratch_folders(final, ()))
            assert not final.exists()

    monkeypatch.setattr(fileio.os, "replace", sweeping)
    with staged_folder(final) as staging:
        (staging / "new.json").write_text("{}")
    assert swept == [[]]
    assert sorted(p.name for p in final.iterdir()) == ["new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_checkpoint_a_killed_save_was_replacing_is_back_for_the_next_reader(tmp_path, killed_replacing):
    """predict, serve or sim given the checkpoint a killed save was replacing found no folder there: the checkpoint
    check, which every reader of a checkpoint makes before anything loads, puts it back."""
    from worldpolicy.engine.sources import check_checkpoint_source
    from worldpolicy.fileio import MODEL_INDEX_FILE

    final = tmp_path / "model"
    final.mkdir()
    (final / MODEL_INDEX_FILE).write_text("{}")
    killed_replacing(STAGE_NEW, 1, str(final))
    assert not final.exists()
    check_checkpoint_source(final)
    assert sorted(p.name for p in final.iterdir()) == [MODEL_INDEX_FILE]


def test_a_replacement_whose_earlier_folder_cannot_all_be_deleted_still_succeeds(tmp_path, monkeypatch):
    """The new folder is in place once both renames are done: a file of the earlier one that cannot be deleted (open
    on NFS, read-only) used to fail the save or dataset write that had succeeded; it is left for the next sweep."""
    from worldpolicy import fileio
    from worldpolicy.fileio import REPLACED_KIND, staged_folder, sweep_scratch_folders

    final = tmp_path / "model"
    final.mkdir()
    (final / "old.json").write_text("{}")
    real_rmtree = shutil.rmtree

    def busy(path, ignore_errors=False, **kwargs):
        if Path(path).name in ("discarded", final.name) or f".{REPLACED_KIND}-" in Path(path).name:
            if not ignore_errors:
                raise OSError(errno.EBUSY, "Device or resource busy", str(path))
            return None
        return real_rmtree(path, ignore_errors=ignore_errors, **kwargs)

    monkeypatch.setattr(fileio.shutil, "rmtree", busy)
    with staged_folder(final) as staging:
        (staging / "new.json").write_text("{}")
    assert sorted(p.name for p in final.iterdir()) == ["new.json"]
    monkeypatch.setattr(fileio.shutil, "rmtree", real_rmtree)
    (aside,) = tmp_path.glob(f".model.{REPLACED_KIND}-*")  # what could not go, without `previous`: swept next time
    assert [path for path, _ in sweep_scratch_folders(final, ())] == [aside]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_writers_sweep_of_stagings_beside_other_names_spares_a_live_ones_and_restores_a_killed_replacement(
        tmp_path):
    """The trainer removed every `.step-*.*` in checkpoints/ at its start (`killed_stagings`), a live process's
    staging too (the recipe's `--install`, which no run lock covers, removed a running install's), and once a killed
    replacement's aside (the earlier checkpoint, step-N missing). `sweep_stagings` is each NAME's
    `sweep_scratch_folders`: a killed process's staging goes, a live one's stays, and nothing else is touched; the
    aside is left to the sweep of its own NAME, which puts the earlier checkpoint back."""
    from worldpolicy.fileio import REPLACED_KIND, STAGED_KIND, ScratchFolder, sweep_scratch_folders, sweep_stagings

    def left(name: str, kind: str) -> tuple[ScratchFolder, Path]:
        hold = ScratchFolder(tmp_path / name, kind)
        return hold, hold.make()

    killed_hold, killed = left("step-0000002", STAGED_KIND)
    killed_hold.release()
    live_hold, live = left("step-0000004", STAGED_KIND)
    aside_hold, aside = left("step-0000001", REPLACED_KIND)
    (aside / "previous").mkdir()
    aside_hold.release()
    other_hold, other = left("model", STAGED_KIND)
    other_hold.release()
    (tmp_path / ".step-notes").mkdir()  # no staging's name: never the writer's
    assert [path for path, _ in sweep_stagings(tmp_path, "step-*")] == [killed]
    assert live.is_dir() and aside.is_dir() and other.is_dir() and (tmp_path / ".step-notes").is_dir()
    assert sweep_scratch_folders(tmp_path / "step-0000001", ()) == [] and (tmp_path / "step-0000001").is_dir()
    live_hold.release()  # its process gone
    assert [path for path, _ in sweep_stagings(tmp_path, "step-*")] == [live]


def test_a_killed_staged_folders_staging_is_removed_by_the_next_one_never_a_live_ones(tmp_path):
    """The staging was a plain mkdtemp (`.model.XXXXXXXX`) that a SIGKILL left for good unless the caller swept it
    itself; it is a held `ScratchFolder` now, which the next `staged_folder` of the same folder removes once its
    process is gone, and never while it lives."""
    from worldpolicy.fileio import STAGED_KIND, ScratchFolder, staged_folder

    final = tmp_path / "model"
    live, killed = ScratchFolder(final, STAGED_KIND), ScratchFolder(final, STAGED_KIND)
    live.make()
    killed.make()
    (killed.path / "half.safetensors").write_bytes(b"\0" * 8)
    killed.release()  # its process ended: the lock went with it
    with staged_folder(final) as staging:
        assert staging.name.startswith(f".model.{STAGED_KIND}-")
        (staging / "new.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", live.path.name])
    assert [p.name for p in final.iterdir()] == ["new.json"]
    live.release()


def test_safetensors_are_written_a_file_at_a_time_and_read_back_whole(tmp_path, monkeypatch):
    """One file while the tensors fit `MAX_SHARD_SIZE` (a small checkpoint's optimizer.safetensors, as before); past
    it diffusers' shards and index, each file's tensors asked for only as it is written, and read back as one."""
    import torch

    from worldpolicy import fileio

    tensors = {f"w{i}": torch.full((100, 100), float(i)) for i in range(5)}  # 40 kB each
    asked: list[list[str]] = []

    def tensors_of(names: list[str]) -> dict[str, torch.Tensor]:
        asked.append(list(names))
        return {name: tensors[name] for name in names}

    fileio.write_safetensors(tmp_path, "optimizer.safetensors", tensors, tensors_of)
    assert fileio.safetensors_files(tmp_path, "optimizer.safetensors") == ["optimizer.safetensors"]
    monkeypatch.setattr(fileio, "MAX_SHARD_SIZE", 100_000)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    asked.clear()
    fileio.write_safetensors(sharded, "optimizer.safetensors", tensors, tensors_of)
    assert fileio.safetensors_files(sharded, "optimizer.safetensors") == [
        "optimizer.safetensors.index.json", *(f"optimizer-0000{i}-of-00003.safetensors" for i in (1, 2, 3))]
    assert asked == [["w0", "w1"], ["w2", "w3"], ["w4"]]
    index = json.loads((sharded / "optimizer.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": 200_000} and index["weight_map"]["w4"].startswith("optimizer-00003")
    for source in (tmp_path, sharded):
        back = fileio.read_safetensors(source, "optimizer.safetensors")
        assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)
    with pytest.raises(FileNotFoundError, match="adapter.safetensors is missing"):
        fileio.read_safetensors(sharded, "adapter.safetensors")


@pytest.mark.parametrize("write", ["atomic", "video"])
def test_a_temp_file_a_killed_writer_left_is_removed_by_the_next_write_never_a_live_ones(tmp_path, write):
    """A SIGKILL between an atomic write's write and its rename left `.NAME.XXXXXXXX.tmp` (a video's `.mp4`) for good:
    nothing swept them. The next write of NAME removes it once its process is gone, and never a live writer's."""
    import signal
    import subprocess

    import numpy as np

    import worldpolicy
    from worldpolicy.fileio import atomic_path, write_bytes_atomic
    from worldpolicy.processing.video import write_video

    name, suffix = ("doc.json", ".tmp") if write == "atomic" else ("clip.mp4", ".mp4")
    target = tmp_path / name
    killed = ("import os, signal, sys; from pathlib import Path; from worldpolicy.fileio import atomic_path\n"
              "with atomic_path(Path(sys.argv[1]), sys.argv[2]) as tmp:\n"
              "    tmp.write_bytes(b'half'); os.kill(os.getpid(), signal.SIGKILL)")
    env = {**os.environ, "PYTHONPATH": str(Path(worldpolicy.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", killed, str(target), suffix], check=False, env=env)
    assert done.returncode == -signal.SIGKILL
    [left] = [p.name for p in tmp_path.iterdir()]
    assert left.startswith(f".{name}.") and left.endswith(suffix)

    with atomic_path(target, suffix) as live:  # a live writer of NAME, in the middle of its write
        live.write_bytes(b"live")
        if write == "atomic":
            write_bytes_atomic(target, "next")
        else:
            write_video(target, np.zeros((2, 16, 16, 3), np.uint8), fps=15)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, live.name])  # the killed one's is gone
    assert [p.name for p in tmp_path.iterdir()] == [name] and target.read_bytes() == b"live"


def test_trainer_state_says_its_format_version_and_a_newer_one_is_refused_where_it_would_be_misread(tmp_path):
    """trainer_state.json carries `schema` since versions were recorded: a file without one is read as the first
    version, this version's as it is. One a newer worldpolicy wrote is refused naming the file and the fix, also by
    the readers that do without a damaged record (a checkpoint loaded as its embodiment's would run as another robot);
    a schema of another file is refused as no run's record, which those readers do without."""
    from worldpolicy.fileio import TRAINER_STATE_SCHEMA, NewerFormatError, read_trainer_state
    from worldpolicy.policy import trained_embodiment

    record = {"step": 1, "config": {"embodiment": "bridge"}}
    for schema in ({}, {"schema": TRAINER_STATE_SCHEMA}):
        (tmp_path / "trainer_state.json").write_text(json.dumps({**schema, **record}))
        assert read_trainer_state(tmp_path)["step"] == 1 and trained_embodiment(tmp_path) == "bridge"
    (tmp_path / "trainer_state.json").write_text(json.dumps({"schema": "worldpolicy.trainer_state/v7", **record}))
    for read in (read_trainer_state, trained_embodiment):
        with pytest.raises(NewerFormatError, match=r"trainer_state\.json '.*': written by a newer worldpolicy \(schema "
                           r"'worldpolicy\.trainer_state/v7'; this one reads 'worldpolicy\.trainer_state/v1' and "
                           r"older\): upgrade worldpolicy"):
            read(tmp_path)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"schema": "worldpolicy.sim_eval/v1", **record}))
    with pytest.raises(ValueError, match=r"schema='worldpolicy\.sim_eval/v1' is not a version of this file; accepted: "
                       r"'worldpolicy\.trainer_state/v1' or older \(or no schema"):
        read_trainer_state(tmp_path)
    assert trained_embodiment(tmp_path) is None


def test_trainer_state_has_one_reader_that_names_a_damaged_file(tmp_path):
    from worldpolicy.fileio import read_trainer_state
    from worldpolicy.policy import trained_embodiment

    with pytest.raises(FileNotFoundError, match=r"trainer_state\.json '.*' does not exist"):
        read_trainer_state(tmp_path)
    assert trained_embodiment(tmp_path) is None  # a folder no run saved: the checkpoint is used as it is
    (tmp_path / "trainer_state.json").write_text('{"step": 1, "config": {"embodiment": "bridge"}}')
    assert read_trainer_state(tmp_path)["step"] == 1
    assert trained_embodiment(tmp_path) == "bridge"
    for damaged, said in (("{", "is not valid JSON"), ('"bridge"', "a JSON str, not an object")):
        (tmp_path / "trainer_state.json").write_text(damaged)
        with pytest.raises(ValueError, match=said):
            read_trainer_state(tmp_path)
        assert trained_embodiment(tmp_path) is None  # what can do without the record does


@pytest.mark.parametrize("kind", ["sim report", "comparison", "dataset shown", "actions"])
def test_a_file_from_a_newer_worldpolicy_says_so_and_an_older_version_still_reads(tmp_path, kind):
    """A versioned file (`worldpolicy.NAME/vN`) one version up was called no such file at all ("not a sim report") by
    the sim report's reader, and read as this version by the pages' (which matched the kind alone): each reader goes
    through `fileio.schema_matches`, which says a newer worldpolicy wrote it and to upgrade. Another kind of file is
    still refused in the reader's own words."""
    from worldpolicy.fileio import COMPARE_SCHEMA, SHOW_SCHEMA, SIM_REPORT_SCHEMA, schema_matches
    from worldpolicy.results import ACTIONS_SCHEMA

    def read(doc):
        if kind == "sim report":
            from worldpolicy.sim.evaluate import EvalReport

            return EvalReport.from_json(doc, "report.json")
        if kind == "actions":
            from worldpolicy.viz.plots import check_prediction_json

            return check_prediction_json(doc)
        from worldpolicy.viz.compare_page import build_compare_html
        from worldpolicy.viz.dataset_page import build_dataset_html

        name, build = ("compare.json", build_compare_html) if kind == "comparison" else \
            ("dataset_show.json", build_dataset_html)
        (tmp_path / name).write_text(json.dumps(doc))
        return build(tmp_path)

    schema = {"sim report": SIM_REPORT_SCHEMA, "comparison": COMPARE_SCHEMA, "dataset shown": SHOW_SCHEMA,
              "actions": ACTIONS_SCHEMA}[kind]
    newer = schema.replace("/v1", "/v2")
    with pytest.raises(ValueError, match=rf"written by a newer worldpolicy \(schema '{newer}'; this one reads "
                                         rf"'{schema}' and older\): upgrade worldpolicy to read it"):
        read({"schema": newer, "columns": [], "units": [], "actions": [], "fps": 15})
    with pytest.raises(ValueError) as caught:  # another kind of file: the reader's own refusal, no upgrade advice
        read({"schema": "worldpolicy.other/v1"})
    assert "upgrade" not in str(caught.value)
    assert schema_matches({"schema": schema}, schema, "f") and schema_matches({"schema": "x/v0"}, "x/v1", "f")
    assert not any(schema_matches(doc, schema, "f") for doc in ({}, [], {"schema": schema + "x"},
                                                               {"schema": schema.replace("/v1", "/v")}))


def test_a_block_that_caught_several_stop_signals_stops_on_the_most_urgent_as_ranks_agree():
    """SIGTERM (the end is now) before SIGUSR1 (Slurm's warning of it) before Ctrl-C, as the ranks of a training agree
    (`STOP_PRIORITY`). A block that caught Slurm's warning and then the end stopped on the first, SIGUSR1: its exit
    status (138) told the job script there was time left when there was none."""
    import signal

    from worldpolicy.fileio import Terminated, exit_status, interruption

    stop = interruption([signal.SIGINT, signal.SIGUSR1, signal.SIGTERM])
    assert isinstance(stop, Terminated) and stop.signum == signal.SIGTERM and exit_status(stop) == 143
    assert interruption([signal.SIGINT, signal.SIGUSR1]).signum == signal.SIGUSR1
    assert type(interruption([])) is KeyboardInterrupt


def test_stored_settings_flatten_in_one_place_an_empty_table_a_value_of_its_own():
    """`fileio.flat_settings`, the one flattening of stored settings (a training run's resume, `sim --resume`, `dataset
    from-sim --resume`; train had a copy of its own that kept an empty table, sim's dropped it): nested tables by
    dotted name, and an empty one kept as `{}`, so a table stored empty and filled since is a change a resume sees."""
    from worldpolicy.fileio import flat_settings
    from worldpolicy.train.config import TrainConfig, changed_settings

    table = {"optim": {"lr": 1e-4, "betas": [0.9, 0.99]}, "sampling": {"steps": 4, "inner": {"x": None}}, "empty": {}}
    assert flat_settings(table) == {"optim.lr": 1e-4, "optim.betas": [0.9, 0.99], "sampling.steps": 4,
                                    "sampling.inner.x": None, "empty": {}}
    assert flat_settings({"steps": 4}, "policy_settings.sampling.") == {"policy_settings.sampling.steps": 4}
    assert flat_settings({}, "strategy.") == {}
    stored = {**TrainConfig().to_dict(), "embodiment": {"name": "arm", "state_keys": {}}}
    assert changed_settings(stored, stored) == []
    filled = {**stored, "embodiment": {"name": "arm", "state_keys": {"joints": "q"}}}
    assert changed_settings(stored, filled) == ["embodiment.state_keys: {} -> {'embodiment.state_keys.joints': 'q'}"]

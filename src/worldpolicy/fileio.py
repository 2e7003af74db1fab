"""Atomic file writes (readers see the old file or the new one, never half of one; a failure leaves nothing behind),
the checks every command makes on its output folder before any work starts, the hold a long run keeps on its
folder (`folder_lock`), the removal of the folders a failed command made and left empty, and holding Ctrl-C (or
SIGTERM, SIGUSR1) while a command finishes an output it started."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import is_integer

try:
    import fcntl
except ImportError:  # Windows: msvcrt's byte-range locks instead (`_lock`)
    fcntl = None  # type: ignore[assignment]
    import msvcrt

logger = logging.getLogger(__name__)

# The one platform check of this module: Windows has no fcntl (a test simulating Windows on Linux blocks it). There a
# file's lock is msvcrt's (`_lock`), a folder cannot be opened to be locked or flushed, and a file open in a process
# can be neither renamed nor removed: temp files and scratch folders are not held, and nothing a killed writer left
# beside an output is swept (it stays, as on a file system without locks); a run folder's or dataset's lock is held.
_WINDOWS = fcntl is None
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has none (nor links a user makes without privileges)

# What the file system a command writes to says, not a bug: a full disk, a reached quota, a read-only or another user's
# folder. Shown as one line by the command line (what the command kept is said before it, e.g. sim's finished
# episodes, or in it, e.g. a training checkpoint that could not be saved), not a traceback.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})

# The folders `make_folder` made inside `removing_empty_folders_on_failure`, outermost first; None outside it.
_made_folders: ContextVar[list[Path] | None] = ContextVar("worldpolicy_made_folders", default=None)


def missing_folders(path: str | Path) -> list[Path]:
    """The folders `make_folder(path)` would make, innermost first (`..` collapsed)."""
    missing = []
    for folder in (Path(os.path.abspath(path)), *Path(os.path.abspath(path)).parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_empty_folders(folders: Collection[Path]) -> None:
    """Remove each of `folders` (innermost first) that is empty: the ones a run made and left nothing in."""
    for folder in folders:
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            pass


def make_folder(path: str | Path) -> Path:
    """`mkdir -p` for outputs: inside `removing_empty_folders_on_failure` the folders it made are remembered, so a
    command that fails leaves none of them behind empty."""
    path = Path(path)
    missing = missing_folders(path)
    path.mkdir(parents=True, exist_ok=True)
    made = _made_folders.get()
    if made is not None:
        made.extend(folder for folder in reversed(missing) if folder.is_dir() and folder not in made)
    return path


@contextmanager
def removing_empty_folders_on_failure() -> Iterator[None]:
    """Run a command; if it fails (an error, Ctrl-C), remove every folder it made with `make_folder` that is still
    empty, innermost first: a run that produced nothing leaves nothing. A folder that existed before, or that holds
    anything (a partial run's report), is kept."""
    made: list[Path] = []
    token = _made_folders.set(made)
    try:
        yield
    except BaseException:
        remove_empty_folders(made[::-1])
        raise
    finally:
        _made_folders.reset(token)


# the signals a scheduler ends a job with: SIGTERM (a time limit, preemption, `kill`, `docker stop`) and SIGUSR1, which
# Slurm sends ahead of the end when the job asks (`sbatch --signal=USR1@120`), as PyTorch Lightning's requeue expects
# (Windows has no SIGUSR1: only the signals the platform has are named)
TERMINATING_SIGNALS = tuple(sig for sig in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if sig is not None)
# The signals that stop a command (a server too), most urgent first. Where several came (one rank's block, or ranks
# that caught different ones), a command stops on the most urgent: SIGTERM (the end is now) before SIGUSR1 (Slurm's
# warning of it) before Ctrl-C. By this order, not by signal number: SIGUSR1 is 10 on Linux but 30 on macOS, above
# SIGTERM's 15.
STOP_PRIORITY = (*TERMINATING_SIGNALS, signal.SIGINT)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGUSR1 on the command line (`terminating_as_interrupt`; `signum` says which): a cluster's scheduler
    ending a job at its time limit or preempting it, or warning that it will, `kill`, `docker stop`. It stops a
    command as Ctrl-C does, so what the command finished is kept (a training step saved as a checkpoint, the sim
    episodes in report.json) and it says how to continue; untouched, either signal killed the process at once, with no
    word of where its work was. A KeyboardInterrupt, so code that stops on Ctrl-C stops on it too; only the exit
    status differs (`exit_status`)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = signum


def signal_name(signum: int) -> str:
    """How a command names a held signal to a person: `Ctrl-C`, `SIGTERM`, `SIGUSR1`."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def terminating_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM and SIGUSR1 (`TERMINATING_SIGNALS`) raise `Terminated` in the main thread, as Ctrl-C
    raises KeyboardInterrupt (the command line runs every command in one). Elsewhere, or for a signal that is ignored
    or already handled (nohup-like launchers), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [sig for sig in TERMINATING_SIGNALS if signal.getsignal(sig) == signal.SIG_DFL]
    for sig in taken:
        signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig in taken:
            signal.signal(sig, signal.SIG_DFL)


def stop_signal(stop: KeyboardInterrupt) -> int:
    """The signal that stopped a command: a `Terminated`'s, or the one an interruption that carries what the command
    kept (`data.label.LabelInterrupted`) took from the stop it replaced (its `signum`, from this); else Ctrl-C's."""
    return getattr(stop, "signum", signal.SIGINT)


def how_stopped(stop: BaseException) -> str:
    """How a command's work ended, in the one wording of every line that says it: "interrupted" (Ctrl-C, or a stop
    carrying it: `stop_signal`), "terminated (SIGTERM)" for a `Terminated` (a scheduler's time limit or preemption,
    `kill`; "terminated (SIGUSR1)"), else "failed": the command's last line (`worldpolicy predict: interrupted`,
    `cli.main`; `__main__.INTERRUPTED` before a command starts), its log's (`session stopped: terminated (SIGTERM)`,
    `logcapture.run_log`'s `session_stopped`), its "... after N of M finished" lines (`worldpolicy sim: failed
    after 2 of 5 episodes finished`) and the dataset commands' lines of what a stop kept (`worldpolicy dataset label:
    terminated (SIGTERM): 2 of 3 episodes labelled are kept in ...`, the `describe` of `data`'s interruptions; the
    page of a `dataset show` cut short too)."""
    if not isinstance(stop, KeyboardInterrupt):
        return "failed"
    signum = stop_signal(stop)
    return "interrupted" if signum == signal.SIGINT else f"terminated ({signal_name(signum)})"


def exit_status(stop: KeyboardInterrupt) -> int:
    """The shell's exit status for a command a signal stopped: 128 + the signal (`stop_signal`: 130 Ctrl-C, 143
    SIGTERM, 138 SIGUSR1), so a job script or scheduler sees which one it was."""
    return 128 + stop_signal(stop)


def interruption(caught: Collection[int]) -> KeyboardInterrupt:
    """The exception that stops a command once the block of `sigint_held` that held `caught` has finished: for the
    most urgent signal it caught (`STOP_PRIORITY`)."""
    urgent = min((sig for sig in caught if sig in STOP_PRIORITY), key=STOP_PRIORITY.index, default=signal.SIGINT)
    return Terminated(urgent) if urgent in TERMINATING_SIGNALS else KeyboardInterrupt()


@contextmanager
def sigint_held(notice: str | None = None, *, second_stops: bool = False,
                say: Callable[[str], None] | None = None) -> Iterator[list[int]]:
    """Hold Ctrl-C (and SIGTERM, SIGUSR1 where `terminating_as_interrupt` made them one) until the block ends, and say
    which came: the block then finishes what it started (an episode being written, a training step), the caller keeps
    it and stops with `interruption(caught)`. `notice` is said when the first signal comes, after its name ("Ctrl-C:
    ..."), so a block that takes a while does not look hung: printed on stderr, or given to `say` (a training run
    prints it and keeps it in its log file). `second_stops`: a second signal stops the block
    (KeyboardInterrupt, or `Terminated`), for a block that may take minutes and is safe to cut short (an atomic save).
    A signal that is ignored, or handled outside Python, is left alone; only the main thread receives signals, so
    elsewhere this holds nothing."""
    caught: list[int] = []
    held = {sig: signal.getsignal(sig) for sig in STOP_PRIORITY}
    held = {sig: handler for sig, handler in held.items() if callable(handler)}  # not SIG_IGN, SIG_DFL or None
    if threading.current_thread() is not threading.main_thread() or not held:
        yield caught
        return

    def hold(signum: int, frame: object) -> None:
        if second_stops and caught:
            raise Terminated(signum) if signum in TERMINATING_SIGNALS else KeyboardInterrupt()
        if notice and not caught:
            text = f"{signal_name(signum)}: {notice}"
            if say is not None:
                say(text)
            else:
                print(text, file=sys.stderr, flush=True)
        caught.append(signum)

    for sig in held:
        signal.signal(sig, hold)
    try:
        yield caught
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


@contextmanager
def sigint_deferred(notice: str | None = None, *, second_stops: bool = False) -> Iterator[None]:
    """`sigint_held` for a block that must finish whole (a set of files written, an episode added), after which a
    signal that came stops the command: `interruption` of it is raised as the block ends. An error in the block is
    raised as it came."""
    with sigint_held(notice, second_stops=second_stops) as caught:
        yield
    if caught:
        raise interruption(caught)


def held_temp_file(path: Path, suffix: str) -> tuple[Path, int | None]:
    """A new empty temp file beside `path` to write `path`'s next content into (`.NAME.XXXXXXXX` + `suffix`, 0600, as
    `tempfile.mkstemp`), held by this process until the returned descriptor is closed (or its end, a SIGKILL
    included): an exclusive `flock`, which the OS drops with the process. Those a killed writer of `path` left, no
    live process holding them, are removed first (logged), so a writer killed between its write and its rename leaves
    nothing for good; a live writer's never, nor any on a file system without locks (nothing tells a dead owner).
    On Windows, where a file open in a process cannot be renamed, it is not held (no descriptor: None) nor swept."""
    prefix = f".{path.name}."
    if _WINDOWS:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        return Path(tmp), None
    _sweep_temp_files(path.parent, prefix, suffix)
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        try:
            _lock(fd, wait=True)  # waits only while a sweep that took it removes it
        except OSError as exc:
            if exc.errno not in _NO_LOCKS_ERRNOS:
                os.close(fd)
                raise
            return Path(tmp), fd  # unlocked: and there a sweep removes nothing
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(tmp))
        except FileNotFoundError:
            same = False
        if same:
            return Path(tmp), fd
        os.close(fd)  # a sweep removed it between its making and our lock: made again


def _sweep_temp_files(folder: Path, prefix: str, suffix: str) -> None:
    """Remove the `held_temp_file`s in `folder` named `prefix` + mkstemp's 8 characters + `suffix` that no live
    process holds, each held while it goes (as `sweep_scratch_folders` does folders)."""
    pattern = re.compile(rf"{re.escape(prefix)}[a-z0-9_]{{8}}{re.escape(suffix)}")
    try:
        names = [name for name in os.listdir(folder) if pattern.fullmatch(name)]
    except OSError:
        return
    for name in names:
        tmp = folder / name
        try:
            fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW)
        except OSError:  # gone meanwhile, a link, another user's: not ours to remove
            continue
        try:
            _lock(fd)
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and os.path.samestat(info, os.lstat(tmp)):
                tmp.unlink()
                logger.warning("removed %s (%.1f MB), left by a worldpolicy process that ended without removing it "
                               "(killed)", tmp, info.st_size / 1e6)
        except OSError:  # held by a live writer, gone meanwhile, or a file system without locks
            pass
        finally:
            os.close(fd)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside `path` (a `held_temp_file`); when the block succeeds it replaces `path`, otherwise it
    is removed. A SIGKILL between the two leaves it, which the next `atomic_path` of `path` removes."""
    path = Path(path)
    make_folder(path.parent)
    tmp, fd = held_temp_file(path, suffix)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600: the mode `open` gives, a private umask kept private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if fd is not None:
            os.close(fd)


STAGED_KIND = "staged"  # `staged_folder`'s staging beside NAME: `.NAME.staged-XXXXXXXX`


def _sync(path: str) -> None:
    """Flush a file, or a folder's names, to the disk (fsync). Not a folder on Windows, where one cannot be opened
    (NTFS journals its names)."""
    if _WINDOWS and os.path.isdir(path):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(folder: Path) -> None:
    """Flush every file under `folder`, and the folders that name them, to the disk."""
    for root, _, files in os.walk(folder):
        for name in [*files, "."]:
            _sync(os.path.join(root, name))


@contextmanager
def staged_folder(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """`atomic_path` for a whole folder (a checkpoint, a model): yield a new folder beside `path` to write into; when
    the block succeeds it gets the modes `mkdir` would give (`share_tree`) and replaces `path` (`replace_folder`),
    otherwise it is removed. `durable` (a training checkpoint, after which older ones are deleted): its files are on the
    disk before it takes the name, and the rename after, so a machine that goes down (a node lost, power) leaves the
    folder whole or absent, not one renamed whose files the OS had not written yet. An error or Ctrl-C never leaves a
    half folder under the final name; a SIGKILL leaves the staging (`.NAME.staged-XXXXXXXX`, a `ScratchFolder` held
    while the block runs), which the next `staged_folder` of `path` removes, with whatever else a killed writer of it
    left, as the dataset writer's are (`sweep_scratch_folders`: never one a live process holds); an earlier replacement
    of `path` that a kill cut short is settled first."""
    path = Path(path)
    make_folder(path.parent)
    sweep_scratch_folders(path, (STAGED_KIND,))
    hold = ScratchFolder(path, STAGED_KIND)
    tmp = hold.make()
    try:
        yield tmp
        share_tree(tmp)  # made 0700 (as mkdtemp), some writers (safetensors) 0600 files
        if durable:
            _sync_tree(tmp)
        replace_folder(tmp, path)
        if durable:
            _sync(str(path.parent))  # the rename: the folder that names it
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        hold.release()


# `replace_folder`'s aside beside NAME, a `ScratchFolder` (`.NAME.replaced-XXXXXXXX`) held while the replacement runs:
# the earlier NAME as `previous` in it, and in `replacement` the identity (device, inode) of the folder taking its name
REPLACED_KIND = "replaced"
_PREVIOUS, _REPLACEMENT = "previous", "replacement"


def _identity(path: str | Path) -> str:
    """What a rename keeps of a folder (device and inode): tells the folder a replacement put at NAME from another."""
    st = os.lstat(path)
    return f"{st.st_dev} {st.st_ino}"


def replace_folder(new: str | Path, path: str | Path) -> None:
    """Give the finished folder `new` (beside `path`) the name `path`: the one way a whole folder is published
    (`staged_folder`: checkpoints, the recipe's model; a dataset writer's staging). An earlier `path` first moves aside
    in one rename, into a `ScratchFolder` held while this runs, and is deleted once `new` has the name (deleted first,
    a Ctrl-C while a large folder was deleted left it half gone); an error puts it back. A kill between the two renames
    leaves NAME missing and the earlier one aside, a kill after them the earlier one aside: the next writer or reader
    of NAME settles both (`sweep_scratch_folders`: the earlier one restored, or removed once NAME is the new one)."""
    new, path = Path(new), Path(path)
    if not os.path.lexists(path):
        os.replace(new, path)
        return
    hold = ScratchFolder(path, REPLACED_KIND)
    aside = hold.make()
    previous = aside / _PREVIOUS
    try:
        (aside / _REPLACEMENT).write_text(_identity(new))
        os.replace(path, previous)
        os.replace(new, path)
        discarded = aside / "discarded"
        os.replace(previous, discarded)  # one rename: a kill while it is deleted never leaves part of it as `previous`
        # the new one is in place: a file that cannot go (open on NFS, read-only) fails nothing; the next sweep retries
        shutil.rmtree(discarded, ignore_errors=True)
    finally:
        if os.path.lexists(previous) and not os.path.lexists(path):  # an error or Ctrl-C before `new` took the name
            os.replace(previous, path)  # the earlier one back, whole
        if not os.path.lexists(previous):
            shutil.rmtree(aside, ignore_errors=True)
        hold.release()


def _settle_replacement(root: Path, aside: Path) -> int | None:
    """Settle the aside a killed `replace_folder` left beside `root` (held by the caller): with `root` missing the
    earlier folder is renamed back (it overwrites nothing and is what the user had there: the killed command never
    published its own); with `root` the folder that replacement put there the aside is removed (returns its bytes);
    with `root` something else (made since the kill) nothing is removed, and the commands to choose are said."""
    previous = aside / _PREVIOUS
    if os.path.lexists(previous) and not os.path.lexists(root):
        os.rename(previous, root)
        shutil.rmtree(aside)
        logger.warning("restored %s from %s, where a worldpolicy process killed while replacing it had moved it", root,
                       previous)
        return None
    try:
        recorded = (aside / _REPLACEMENT).read_text()
    except OSError:
        recorded = None
    if os.path.lexists(previous) and (recorded is None or _identity(root) != recorded):
        logger.warning("%s holds the earlier %s, which a worldpolicy process killed while replacing it moved aside, "
                       "and %s is another folder made since; it is kept. To put it back in place of the current one: "
                       "rm -r %s && mv %s %s; to discard it: rm -r %s", aside, root.name, root, shlex.quote(str(root)),
                       shlex.quote(str(previous)), shlex.quote(str(root)), shlex.quote(str(aside)))
        return None
    size = folder_size(aside)
    shutil.rmtree(aside)
    return size


LOCK_FILE = ".worldpolicy.lock"  # in a run folder while a command writes it (`folder_lock`): the holder's PID
# What a file system without locks says to flock (some FUSE and network mounts): the run goes on unlocked, as before.
_NO_LOCKS_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS})
# Where msvcrt's lock lies (`_lock`): one byte at 1 TiB, past the end of any file this writes, so the PID a lock file
# holds stays readable and a temp file's writes never reach it (Windows' locks are mandatory: a locked byte can be
# neither read nor written but through the handle that locked it)
_WINDOWS_LOCK_AT = 2**40


def _lock(fd: int, *, shared: bool = False, wait: bool = False) -> None:
    """Lock the open file `fd` for this process until it is closed (the OS lets go with the process, a SIGKILL
    included): exclusive, or `shared`; a lock another holds raises BlockingIOError, or with `wait` is waited for. POSIX:
    `flock`. Windows: msvcrt's lock of one byte (`_WINDOWS_LOCK_AT`), which differs: it is always exclusive (msvcrt
    has no shared lock: two `folder_holder`s at the same instant see each other as a holder, and one refuses a run that
    starts then, as a shared one does), never waits (what waits, a temp file or scratch folder, is not held there),
    and Windows may let go of a closed file's lock a moment later rather than at once."""
    if fcntl is not None:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        return
    assert not wait, "on Windows no lock is waited for"
    at = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, _WINDOWS_LOCK_AT, os.SEEK_SET)  # msvcrt locks from the file's position
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        if exc.errno != errno.EACCES:  # what msvcrt says of a byte another holds
            raise
        raise BlockingIOError(errno.EWOULDBLOCK, "the file is locked by another process") from None
    finally:
        os.lseek(fd, at, os.SEEK_SET)


def _lock_not_ours(path: Path, lock: Path, flag: str) -> str:
    """Why this user cannot open `lock` for folder `path` (in it, or beside it), and the fix: a lock file another
    user's run left (created with the run's umask, it may be read-only to others), one of this user's own made
    read-only, or a folder this user may not write in."""
    try:
        st = os.lstat(lock)
    except FileNotFoundError:
        return (f"{flag}: {str(lock.parent)!r} is not writable by this user (the lock file {lock.name!r} cannot be "
                f"made in it); choose another {flag}, or a folder you may write in")
    except OSError:
        st = None
    where = "in the folder" if lock.parent == path else "beside the dataset"
    what = f"{flag}: the lock file {str(lock)!r}, which a worldpolicy run keeps {where} while it writes there,"
    # ours, yet refused: its mode (a chmod, a copy) forbids writing (Windows has no user ids: never so there)
    if st is not None and hasattr(os, "geteuid") and st.st_uid == os.geteuid():
        return (f"{what} belongs to this user but is not writable (mode {stat.S_IMODE(st.st_mode):o}). If no run is "
                f"using {str(path)!r} now, remove the file (rm {str(lock)!r}) or make it writable (chmod u+w "
                f"{str(lock)!r}) and run again; else choose another {flag}")
    try:
        import pwd

        owner = f"user {pwd.getpwuid(st.st_uid).pw_name!r}" if st is not None else "another user"
    except ImportError:  # Windows: no user ids to name
        owner = "another user"
    except KeyError:  # a uid without a name here (a container's)
        owner = f"uid {st.st_uid}"
    return (f"{what} belongs to {owner} and this user may not open it: a run of theirs left it. If no run is using "
            f"{str(path)!r} now, remove the file (rm {str(lock)!r}, as its owner or an administrator) and run again; "
            f"else choose another {flag}")


class FolderInUse(ValueError):
    """`folder_lock`'s (and `dataset_lock`'s) refusal of a folder another process holds: `holder` is that process's
    PID (as its lock file says it), for a caller that knows what the holder is (a running server) and says so. Made
    from its text alone too, as `cli.flag_named` remakes an error with its flags named (then neither is known)."""

    def __init__(self, message: str, path: Path | None = None, holder: str | None = None) -> None:
        super().__init__(message)
        self.path, self.holder = path, holder


@contextmanager
def folder_lock(path: str | Path, flag: str) -> Iterator[Path]:
    """Hold the run folder `path` (made if missing) for this process while the block runs. Two commands writing one
    folder at once (two trainings on one --out, a --resume of a run still going) interleave their checkpoints, logs
    and reports and lose work: the second is refused here, before anything loads, with the holder's PID and what to
    do. An exclusive `flock` on `LOCK_FILE` inside the folder, which the OS releases when the process ends, a crash or
    SIGKILL included (the file may stay behind, unlocked, and is taken over by the next run). It lives in the folder,
    not beside it: a run folder is never swapped as a whole (checkpoints are staged inside it, sim's --overwrite clears
    its files in place), and the folder's parent may not be writable. When the block ends the file is removed (while
    still held: a process that opened it meanwhile finds another file, or none, at the path once it gets the lock, and
    opens again), and so is the folder if this made it and the block wrote nothing: a failed run leaves none."""
    path = Path(path)
    with _lock_file_held(path, path / LOCK_FILE, flag, None, "two runs writing one folder would mix their files and "
                         "lose work: wait for that run to finish") as lock:
        yield lock


DATASET_LOCK_SUFFIX = ".lock"  # `dataset_lock`'s file beside a dataset NAME while a command writes it: `.NAME.lock`


def dataset_lock_file(path: str | Path) -> Path:
    """The lock file `dataset_lock` keeps beside the folder `path`: `.NAME.lock`, hidden, in its parent; beside where
    `path` leads (a link to a folder on a bigger disk, `.`), as the dataset writer publishes a linked root at its
    target: every name of one dataset is one lock, and `push` through a link sees a command writing the target."""
    path = Path(os.path.realpath(path))  # not `Path.resolve`, which raises for a link looping to itself
    return path.parent / f".{path.name}{DATASET_LOCK_SUFFIX}"


@contextmanager
def dataset_lock(path: str | Path, flag: str, command: str) -> Iterator[Path]:
    """Hold the dataset folder `path` for this process while the block runs: `folder_lock` for a folder that is
    published whole (`replace_folder`: a dataset command's staging, `dataset label`'s `OUT.partial`), where a lock
    file inside would be swapped away with the folder it replaces. Two commands writing one dataset at once (two
    `dataset label` runs into one --out, a `dataset from-sim --resume` of a run still going) each stage their own and
    the last to finish replaces the other's (an interrupted one's kept episodes included): the second is refused,
    naming the holder's PID and `command` ("`dataset label`"), which the lock file holds. The file is
    `dataset_lock_file(path)`, beside the folder, so nothing new is inside the dataset (its readers, lerobot's
    included, see what they always saw); the parent is made if missing (a writer stages there) and removed again if
    the block left it empty. A lock file a killed command left is taken over, or removed by the next sweep beside
    `path` (`sweep_scratch_folders`)."""
    path = Path(path)
    blocking = file_in_the_way(path.parent)  # said as the commands' own checks say it, not as mkdir's error
    if blocking is not None:
        raise ValueError(f"{flag}: {str(path)!r} is under {str(blocking)!r}, which is a file; choose another {flag}")
    with _lock_file_held(path, dataset_lock_file(path), flag, command, "two commands writing one dataset each "
                         "publish their own, and the last to finish replaces the other's: wait for that command to "
                         "finish") as lock:
        yield lock


@contextmanager
def _lock_file_held(path: Path, lock: Path, flag: str, command: str | None, clash: str) -> Iterator[Path]:
    """The lock of `folder_lock` and `dataset_lock`: an exclusive `flock` on `lock` (made in `lock.parent`, which is
    made if missing and removed at the end if left empty, with the folders above it this made), which holds this
    process's PID and, given, its `command`; a holder's refusal names them and says `clash`: why two at once are
    refused, and to wait."""
    made = missing_folders(lock.parent)
    fd: int | None
    while True:
        make_folder(lock.parent)
        try:  # never through a link: its target would be truncated, and a dangling one looped here for ever
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o666)
        except FileNotFoundError:  # the holder removed the folder as it finished, empty: make it again
            continue
        except PermissionError:
            raise ValueError(_lock_not_ours(path, lock, flag)) from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise ValueError(f"{flag}: {str(lock)!r} is a symbolic link, not the lock file a worldpolicy run keeps "
                             f"there; remove it and run again, or choose another {flag}") from None
        try:
            _lock(fd)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise FolderInUse(f"{flag}: {str(path)!r} is in use by another worldpolicy process ({holder.said}, in "
                              f"{str(lock)!r}); {clash} (or stop it), then run again, or choose another {flag}",
                              path, holder.pid) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_LOCKS_ERRNOS:
                raise
            logger.debug("%s: the file system takes no locks (%s); %s is not locked", flag, exc.strerror, path)
            fd = None
            break
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # locked a file its holder removed as it finished: the folder is free, lock the one there now
    try:
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n{command}\n".encode() if command else f"{os.getpid()}\n".encode())
        yield lock
    finally:
        if _WINDOWS and fd is not None:  # where a file open in a process cannot be removed: let go first; one another
            os.close(fd)  # process opened meanwhile stays, and it takes it over
            fd = None
        with suppress(PermissionError) if _WINDOWS else nullcontext():
            lock.unlink(missing_ok=True)
        remove_empty_folders(made)
        if fd is not None:
            os.close(fd)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock file (`folder_lock`, `dataset_lock`), as the file says: the process's PID ("unknown" if the
    file is empty) and, for a dataset's, its command; `lock` the file."""

    pid: str
    command: str | None
    lock: Path | None = None

    @property
    def said(self) -> str:
        return f"PID {self.pid}" + (f", {self.command}" if self.command else "")


def _lock_holder(fd: int, lock: Path | None = None) -> LockHolder:
    """What the lock file open at `fd` says of its holder (a PID line, then a command line for a dataset's)."""
    os.lseek(fd, 0, os.SEEK_SET)  # not os.pread, which Windows lacks
    lines = os.read(fd, 512).decode(errors="replace").splitlines()
    return LockHolder(lines[0].strip() if lines and lines[0].strip() else "unknown",
                      lines[1].strip() if len(lines) > 1 and lines[1].strip() else None, lock)


def folder_holder(path: str | Path) -> LockHolder | None:
    """Who holds the folder `path` now, with `folder_lock` (its lock file inside) or `dataset_lock` (beside), else
    None: for a command that only reads a folder (`worldpolicy push`), so it leaves no lock file of its own there."""
    for lock in (Path(path) / LOCK_FILE, dataset_lock_file(path)):
        try:
            fd = os.open(lock, os.O_RDONLY | _NOFOLLOW)
        except OSError:  # no lock file (no run holds it), a link, one this user may not read
            continue
        try:
            _lock(fd, shared=True)  # let go as the file closes
        except BlockingIOError:
            return _lock_holder(fd, lock)
        except OSError:  # a file system without locks: nothing tells a live holder
            pass
        finally:
            os.close(fd)
    return None


class ScratchFolder:
    """A hidden working folder beside an output ROOT, `.ROOT.KIND-XXXXXXXX` (a dataset writer's staging, `dataset
    from-sim`'s raw frames), held by this process from `make` to `release` (or its end, a SIGKILL included): an
    exclusive `flock` on the folder itself, which the OS drops with the process. The path is known before the folder
    is made. A killed writer leaves the folder; the next writer beside the same ROOT removes it
    (`sweep_scratch_folders`), never one a live process holds."""

    def __init__(self, root: str | Path, kind: str) -> None:
        root = Path(root)
        self.path = root.parent / f".{root.name}.{kind}-{uuid.uuid4().hex[:8]}"
        self._fd: int | None = None

    def make(self) -> Path:
        """Make the folder (0700, as `tempfile.mkdtemp`) and hold it. A sweep that locked it between the two removes
        it: it is made again, once the sweep let go. On Windows, where a folder cannot be opened, it is not held (and
        nothing is swept there)."""
        while True:
            os.mkdir(self.path, 0o700)  # a name taken raises: never another's folder
            if _WINDOWS:
                return self.path
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except FileNotFoundError:  # a sweep removed it already
                continue
            try:
                _lock(fd, wait=True)  # waits only while a sweep that took it removes it
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _NO_LOCKS_ERRNOS:
                    raise
                return self.path  # unlocked: and there a sweep removes nothing (`sweep_scratch_folders`)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self.path
            os.close(fd)

    def release(self) -> None:
        """Let go of the folder (after it was removed, or renamed into place)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def folder_size(path: str | Path) -> int:
    """Bytes in the files under `path` (links not followed)."""
    return sum(os.lstat(os.path.join(folder, name)).st_size for folder, _, files in os.walk(path) for name in files)


def sweep_scratch_folders(root: str | Path, kinds: Collection[str]) -> list[tuple[Path, int]]:
    """Remove the `ScratchFolder`s of `kinds` beside `root` that no live process holds (a SIGKILLed writer's: a
    dataset's staging, raw frames; hundreds of MB each), logging each with its size; returns them. First, whatever
    `kinds`, the asides of `replace_folder`s a kill cut short are settled (`_settle_replacement`): the one place every
    writer and reader of `root` goes through (`staged_folder`, the dataset writer and opener, the dataset commands'
    output checks, the checkpoint check), so a kill between its two renames never leaves the user's earlier folder
    hidden; last, a `dataset_lock` file a killed command left beside `root` is removed. Only names of exactly that form
    match (`.ROOT.KIND-` then letters, digits, `_`): `serve --record`'s spool (`.ROOT.writing-spool-*`), which is
    recovered, never swept, does not. On Windows, where no scratch folder is held (`ScratchFolder.make`), none is
    removed or settled: only the lock file."""
    root = Path(root)
    kinds = (REPLACED_KIND, *kinds)
    pattern = re.compile(rf"\.{re.escape(root.name)}\.({'|'.join(map(re.escape, kinds))})-[a-z0-9_]{{8,12}}")
    try:
        names = [] if _WINDOWS else os.listdir(root.parent)
    except OSError:
        return []
    matched = ((name, match[1]) for name in names if (match := pattern.fullmatch(name)))
    found = sorted((kind != REPLACED_KIND, name, kind) for name, kind in matched)
    removed = []
    for _, name, kind in found:  # replacements first: the user's folder back before anything is removed
        path = root.parent / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, a file or a link of that name: not ours to remove
            continue
        try:
            _lock(fd)
        except OSError:  # held by a live process, or a file system without locks (then nothing tells a dead owner)
            os.close(fd)
            continue
        try:
            if not os.path.samestat(os.fstat(fd), os.lstat(path)):
                continue
            if kind == REPLACED_KIND:
                size = _settle_replacement(root, path)
                if size is None:
                    continue
            else:
                size = folder_size(path)
                shutil.rmtree(path)
            logger.warning("removed %s (%.1f MB), left by a worldpolicy process that ended without removing it "
                           "(killed)", path, size / 1e6)
            removed.append((path, size))
        except OSError as exc:
            logger.warning("could not remove or restore %s, left by a killed worldpolicy process: %s", path, exc)
        finally:
            os.close(fd)
    _remove_stale_lock(dataset_lock_file(root))
    return removed


def _remove_stale_lock(lock: Path) -> None:
    """Remove the `dataset_lock` file at `lock` that no live process holds (a killed command's: the OS let go of its
    lock, the file stayed), held while it goes, as its holder removes it, so a command opening it meanwhile opens
    again (`_lock_file_held`). On Windows, where a file open in a process cannot be removed, it is let go first: one
    another command opened meanwhile then stays, theirs."""
    fd: int | None
    try:
        fd = os.open(lock, os.O_RDONLY | _NOFOLLOW)
    except OSError:  # none (the usual), a link, one this user may not read: not ours to remove
        return
    try:
        _lock(fd)
        if os.path.samestat(os.fstat(fd), os.lstat(lock)):
            if _WINDOWS:
                os.close(fd)
                fd = None
            lock.unlink()
    except OSError:  # held by a live command, gone meanwhile, or a file system without locks
        pass
    finally:
        if fd is not None:
            os.close(fd)


def sweep_stagings(parent: str | Path, name_glob: str) -> list[tuple[Path, int]]:
    """`sweep_scratch_folders` of every NAME in `parent` that `name_glob` matches and a `staged_folder` staging
    (`.NAME.staged-*`) is beside: a killed save of another NAME than the next one (the trainer's checkpoints: a kill
    at step 200, the run resumed from step 100) is removed once its process is gone, and never a live process's,
    as each NAME's own next `staged_folder` removes it."""
    parent = Path(parent)
    staging = re.compile(rf"\.(.+)\.{STAGED_KIND}-[a-z0-9_]{{8,12}}")
    names = {match[1] for path in parent.glob(f".{name_glob}.{STAGED_KIND}-*")
             if (match := staging.fullmatch(path.name))}
    return [swept for name in sorted(names) for swept in sweep_scratch_folders(parent / name, (STAGED_KIND,))]


def file_in_the_way(path: str | Path) -> Path | None:
    """`path` itself or the nearest parent that exists as a file: a folder can never be made there."""
    path = Path(path)
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


# The names that mark what a folder holds (`FOLDER_KINDS`), defined here, the lowest layer, so the modules that write
# or read them (engine.loading, policy, the trainer, viz) import the one spelling rather than repeat it.
MODEL_INDEX_FILE = "model_index.json"  # a diffusers-format checkpoint's index of its parts
BASE_FILE = "base_model.json"  # marks an adapter checkpoint: the base it applies to and samples of the base's weights
TRAINER_STATE_FILE = "trainer_state.json"  # the run's step and config (its objectives), in each checkpoint it saves
EMBODIMENT_FILE = "embodiment.json"  # a checkpoint's own embodiment, written by `worldpolicy train`
# a checkpoint's LoRA adapters, diffusers' format (`load_lora_adapter(folder, weight_name=..., prefix=None)`): what an
# adapter checkpoint loads; in a merged one (no BASE_FILE) only a resume reads them
ADAPTER_FILE = "adapter.safetensors"
TRAINED_FILE = "trained.safetensors"  # an adapter checkpoint's fully trained weights (the action heads), fp32
OPTIMIZER_FILE = "optimizer.safetensors"  # a checkpoint's optimizer moments: only a resume reads them (`Trainer._save`)
CHECKPOINT_GLOB = "checkpoints/step-*"  # a training run's saved checkpoints (`Trainer._save`), one folder per step
METRICS_FILE = "metrics.jsonl"  # a training run's log: one line of losses (and evaluations) per step
# a training run's console, kept: every line its sessions showed (and a progress line every log_every steps), timed,
# appended across resumes (`logcapture.run_log`)
TRAIN_LOG_FILE = "train.log"
ACTIONS_FILE = "actions.json"  # a predict run's actions (docs/actions-schema.md)
TRAINING_SUMMARY_FILE = "training_summary.json"  # a recipe's model: its stages (the recording, the evaluation)
# a checkpoint's model card (the hub's README.md with YAML front matter: `train.model_card`); loading never reads it
MODEL_CARD_FILE = "README.md"
# a run folder's self-contained page (`viz.report.write_report`): predict, sim, train, a comparison, a sweep, a
# dataset shown; `worldpolicy report DIR` redraws it
REPORT_FILE = "index.html"
SIM_REPORT_FILE = "report.json"  # a sim run's report (`sim.evaluate.write_report`): its episodes, what --resume reads
SIM_REPORT_MARKDOWN = "report.md"  # a sim run's report to read (`sim.evaluate.EvalReport.markdown`)
SIM_REPORT_FIGURE = "report.png"  # a sim run's figure (`sim.evaluate.report_figure`): success with its CI, lengths
# a sim run's episodes, one JSON line each, appended as each ends (`sim.evaluate.EpisodeLog`): what --resume reads them
# from, report.json's summary being rewritten at most every `sim.evaluate.SUMMARY_INTERVAL_S` while the run goes on
SIM_EPISODES_FILE = "episodes.jsonl"
SIM_EPISODES_CSV = "episodes.csv"  # a sim run's episodes, a row each, for a spreadsheet or pandas (`write_report`)
# a sim run's console, kept: every line its sessions showed and a line per episode, timed, appended across resumes
# (`logcapture.run_log`), as a training run's `TRAIN_LOG_FILE`
SIM_LOG_FILE = "sim.log"
# a planned sim run's candidate videos (`sim.policies.CandidateVideos`, `--plan-save-candidates`), beside its episode
# videos (`viz.report.SIM_EPISODE_VIDEOS`, whose pattern they do not match)
SIM_CANDIDATES_DIR = "videos/candidates"
SIM_EPISODE_PREFIX = "episode_"  # what a sim episode's name starts with (`sim_episode_name`), its seed after it
OPENLOOP_FILE = "openloop.json"  # an open-loop evaluation's metrics (`data.openloop`, `worldpolicy dataset eval`)
COMPARE_FILE = "compare.json"  # sim runs compared side by side (`sim.compare.write_comparison`)
# a training run's checkpoints each evaluated by `worldpolicy sim --all-checkpoints` (`sim.sweep.write_sweep`)
SWEEP_FILE = "sweep.json"
DREAM_FILE = "dream.json"  # a policy run in a world model's imagination (`worldpolicy dream`): its chunks, rewards
# a dream's record while it runs (`sim.world_model.DreamRecorder`): chunks.jsonl and one mp4 per chunk, appended to as
# each chunk ends and removed once the run's files are written; a dream killed outright (SIGKILL, power) leaves it
DREAM_PARTIAL_DIR = "dream_partial"
DREAM_CHUNKS_FILE = f"{DREAM_PARTIAL_DIR}/chunks.jsonl"
SHOW_FILE = "dataset_show.json"  # what `worldpolicy dataset show` drew of a dataset (`data.show`), its page's source
# Where, in a LeRobot dataset's folder, worldpolicy says how it made the dataset (`dataset from-sim`: the task and
# expert versions and the recording's settings; `dataset select|merge|label`: the source and how), which the data
# tools write and read (`stored_provenance`) and a training run's page reads. A file of its own beside info.json:
# lerobot reads info.json, stats.json, tasks.parquet, episodes/ and subtasks.parquet of meta/ and no other file, while
# lerobot 0.6 reads info.json into a typed `DatasetInfo` that warns about a key it does not know on every load and
# drops it when it rewrites info.json (docs/data.md, "Newer lerobot"). The dataset stays a plain LeRobot v3.0 one.
PROVENANCE_FILE = "meta/worldpolicy_provenance.json"
# The info.json key datasets written before `PROVENANCE_FILE` keep it under: still read (`stored_provenance`)
PROVENANCE_KEY = "worldpolicy_provenance"

# The JSON files whose "schema" key names their kind and format version, `worldpolicy.NAME/vN`, as this version writes
# them (docs/data.md, "Files from older versions"; the actions file's is `results.ACTIONS_SCHEMA`). N goes up only when
# a reader of N would misread the file; a field added is no new version (a reader takes a missing one as what the
# versions before it did). Each reader checks a document through `schema_matches`, the one place that tells another
# kind of file from a newer version of its own.
SIM_REPORT_SCHEMA = "worldpolicy.sim_eval/v1"  # SIM_REPORT_FILE
SIM_EPISODES_SCHEMA = "worldpolicy.sim_episodes/v1"  # SIM_EPISODES_FILE's first line
COMPARE_SCHEMA = "worldpolicy.sim_compare/v1"  # COMPARE_FILE
SWEEP_SCHEMA = "worldpolicy.sim_sweep/v1"  # SWEEP_FILE
SHOW_SCHEMA = "worldpolicy.dataset_show/v1"  # SHOW_FILE
DREAM_SCHEMA = "worldpolicy.dream/v1"  # DREAM_FILE (`sim.world_model.write_dream`)
# DREAM_CHUNKS_FILE's first line, while a dream runs (`sim.world_model.DreamRecorder`)
DREAM_PARTIAL_SCHEMA = "worldpolicy.dream-partial/v1"
# Files versioned since after they were first written: one without a "schema" key is read as v1 (`check_version`)
TRAINER_STATE_SCHEMA = "worldpolicy.trainer_state/v1"  # TRAINER_STATE_FILE
EMBODIMENT_SCHEMA = "worldpolicy.embodiment/v1"  # a checkpoint's embodiment.json (`EMBODIMENT_FILE`)
# OPENLOOP_FILE: v2 holds a `mode` (policy, forward_dynamics, inverse_dynamics), whose forward_dynamics holds frame
# errors (PSNR, SSIM) where v1 held action columns alone
OPENLOOP_SCHEMA = "worldpolicy.openloop/v2"


class NewerFormatError(ValueError):
    """A worldpolicy file written by a newer worldpolicy, in a format version this one does not read (`schema_matches`):
    a reader that does without a file it cannot read (a damaged one) still refuses this one, whose record it would
    otherwise drop without a word."""


def schema_matches(doc: Any, schema: str, what: str) -> bool:
    """Whether JSON document `doc` is of `schema`'s kind (`worldpolicy.NAME/vN`) in a version this worldpolicy reads:
    N or an older one (its reader takes what an older version wrote). False for any other document (no schema,
    another kind), which the caller refuses in its own words. One of the kind in a newer version (written by a newer
    worldpolicy: a colleague's run, a downgrade) raises NewerFormatError naming `what` and the fix, rather than being
    read as this version or called no such file at all."""
    kind, _, version = schema.rpartition("/v")
    found = doc.get("schema") if isinstance(doc, Mapping) else None
    if not isinstance(found, str) or not found.startswith(f"{kind}/v") or not found[len(kind) + 2:].isdigit():
        return False
    if int(found[len(kind) + 2:]) > int(version):
        raise NewerFormatError(f"{what}: written by a newer worldpolicy (schema {found!r}; this one reads {schema!r} "
                               "and older): upgrade worldpolicy to read it")
    return True


def check_version(doc: Mapping[str, Any], schema: str, what: str) -> None:
    """Refuse JSON object `doc` of a file versioned only since after it was first written (`TRAINER_STATE_SCHEMA`,
    `EMBODIMENT_SCHEMA`) where this worldpolicy cannot read it: one in a newer version raises NewerFormatError
    (`schema_matches`), one whose "schema" is anything else (another kind of file, a damaged value) ValueError, each
    naming `what`, what it holds and what is accepted. One without the key (written before versions were recorded)
    is read as v1, as is one of `schema`'s kind in a version this worldpolicy reads."""
    if "schema" in doc and not schema_matches(doc, schema, what):
        raise ValueError(f"{what}: schema={doc['schema']!r} is not a version of this file; accepted: {schema!r} or "
                         "older (or no schema: written before versions were recorded)")


def flat_settings(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`table`'s values by flat name, `prefix` first (`optim.lr`, `policy_settings.sampling.steps`): how a run's
    stored settings are compared with those it would go on with, key by key (`train.config.changed_settings`;
    `sim.evaluate.EvalReport.settings` for `resume_conflicts`, `dataset from-sim --resume`'s `policy_settings`), so a
    setting recorded since (`center_crop`) is one key the stored run lacks, not a whole table that differs. An empty
    table is a value of its own (`{}`): one stored empty and filled since is a change, not a setting never stored."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        out.update(flat_settings(value, f"{prefix}{key}.") if isinstance(value, dict) and value
                   else {prefix + key: value})
    return out


def sim_episode_name(seed: int) -> str:
    """The name of a sim run's episode seeded `seed`, `episode_0012`: its video's (`videos/episode_0012.mp4`,
    `sim.evaluate`), its candidate videos' prefix (`sim.policies.CandidateVideos`) and its Rerun entity's (`sim.rerun`,
    `viz.rerun.log_sim_run`); `viz.report` reads the seed back from after `SIM_EPISODE_PREFIX`."""
    return f"{SIM_EPISODE_PREFIX}{seed:04d}"


def is_checkpoint(path: str | Path) -> bool:
    """A folder that loads as a checkpoint: diffusers-format (model_index.json) or a LoRA adapter on its base
    (base_model.json)."""
    return (Path(path) / MODEL_INDEX_FILE).is_file() or (Path(path) / BASE_FILE).is_file()


def saved_checkpoints(run: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of each checkpoint the training run `run` saved (`CHECKPOINT_GLOB`: `checkpoints/step-NNNNNNN`,
    a folder that loads as one, `is_checkpoint`), oldest first by step; a save a kill cut short (`.step-*`, staged)
    is none."""
    found = []
    for folder in Path(run).glob(CHECKPOINT_GLOB):
        number = folder.name.removeprefix("step-")
        if number.isdigit() and is_checkpoint(folder):
            found.append((int(number), folder))
    return sorted(found)


@dataclass(frozen=True)
class FolderKind:
    """A kind of thing a folder can hold, told by names (glob patterns) under it, any one marker enough: names only
    that kind writes, so a user's folder with a config.json is not taken for a run. `writer` is the command that
    writes such folders (a rerun may write there again); None for what no command may write into. `repo_type`: the
    kind of Hugging Face hub repository `worldpolicy push` shares it as; None for what is not shared."""

    what: str
    writer: str | None
    markers: tuple[str, ...]
    repo_type: str | None = None


# The one place that says which kind of thing a folder holds: each command's output folder is checked against it,
# so a run never lands in a checkpoint, a dataset or another command's run (mixing their files, replacing some).
FOLDER_KINDS: tuple[FolderKind, ...] = (
    FolderKind("a diffusers checkpoint", None, (MODEL_INDEX_FILE,), "model"),
    FolderKind("a LoRA adapter checkpoint", None, (BASE_FILE,), "model"),
    FolderKind("a LeRobot dataset", None, ("meta/info.json",), "dataset"),
    FolderKind("a training run", "train", (METRICS_FILE, f"{CHECKPOINT_GLOB}/{TRAINER_STATE_FILE}", TRAIN_LOG_FILE)),
    FolderKind("a from-scratch recipe run", "recipe", ("summary.json",)),
    FolderKind("a sim run", "sim", (SIM_REPORT_FILE,)),
    FolderKind("a comparison of sim runs", "sim compare", (COMPARE_FILE,)),
    FolderKind("a sweep of a training run's checkpoints", "sim sweep", (SWEEP_FILE,)),
    # before predict's: a dream run holds an actions.json too (the dreamed trajectory's)
    FolderKind("a dream run", "dream", (DREAM_FILE, DREAM_CHUNKS_FILE)),
    FolderKind("a predict run", "predict", (ACTIONS_FILE,)),
    FolderKind("a dataset frame's predict inputs", "dataset frame", ("dataset_frame.json",)),
    FolderKind("an open-loop evaluation", "dataset eval", (OPENLOOP_FILE,)),
    FolderKind("a dataset's pages", "dataset show", (SHOW_FILE,)),
    FolderKind("viz plots", "viz", ("animation.mp4", "actions.png", "actions.pdf", "actions.svg")),
)
RUN_WRITERS = tuple(kind.writer for kind in FOLDER_KINDS if kind.writer is not None)


def folder_kind(path: str | Path) -> tuple[FolderKind, str] | None:
    """What `path` holds and the marker that says so; None for a missing or empty folder, or one with no marker."""
    path = Path(path)
    if not path.is_dir():
        return None
    for kind in FOLDER_KINDS:
        for marker in kind.markers:
            if next(path.glob(marker), None) is not None:
                return kind, marker
    return None


def runs_inside(path: str | Path) -> list[tuple[Path, FolderKind, str]]:
    """The runs (folders a command writes) directly under `path`, each with its kind and marker: `runs/demo`'s
    `policy/` and `sim/`. Hidden folders (a staging `.NAME.*`) are not looked at."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = []
    for sub in sorted(path.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            kind = folder_kind(sub)
            if kind is not None and kind[0].writer is not None:
                found.append((sub, *kind))
    return found


def refuse_foreign_folder(path: str | Path, flag: str, writer: str | Collection[str], *,
                          not_over_runs: bool = False) -> None:
    """Refuse an output folder that holds another kind of thing than `writer` writes, or lies inside a checkpoint or
    dataset: the run would mix its files with theirs and replace some (an index.html, a settings.json). A new or
    empty folder, one of no known kind, and an earlier run of the same command are accepted. `not_over_runs`: also
    refuse a folder of no known kind whose subfolders hold runs (the demo's `runs/demo`, a folder of sim runs), for a
    command that writes its files at the folder's top, in among those runs."""
    accepted = {writer} if isinstance(writer, str) else set(writer)
    path = Path(path)
    for parent in Path(os.path.abspath(path)).parents:  # a checkpoint's transformer/; `..` collapsed (ckpt/../out)
        found = folder_kind(parent)
        if found is not None and found[0].writer is None:
            kind, marker = found
            raise ValueError(f"{flag}: {str(path)!r} is inside {str(parent)!r}, which holds {kind.what} ({marker}); "
                             f"choose another {flag} outside it")
    found = folder_kind(path)
    if found is not None and found[0].writer not in accepted:
        kind, marker = found
        wanted = [k.what for k in FOLDER_KINDS if k.writer in accepted]
        expected = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} or {wanted[-1]}"
        fix = f"choose another {flag}" + (" (a new or empty folder)" if len(accepted) == 1 else "")
        raise ValueError(f"{flag}: {str(path)!r} holds {kind.what} ({marker}), not {expected}; writing there would "
                         f"mix this run's files into it and could replace some of its own: {fix}")
    if found is None and not_over_runs and (inside := runs_inside(path)):
        held = "; ".join(f"{str(sub)!r}: {kind.what} ({marker})" for sub, kind, marker in inside[:3])
        more = f" and {len(inside) - 3} more" if len(inside) > 3 else ""
        own = [str(sub) for sub, kind, _ in inside if kind.writer in accepted]
        rerun = f", or {own[0]!r} itself to rerun into that run" if own else ""
        raise ValueError(f"{flag}: {str(path)!r} holds other runs in its subfolders ({held}{more}); this run's files "
                         f"would be mixed in among them: choose another {flag} (a new or empty folder{rerun})")


def output_folder(path: str | Path, flag: str, create: bool = True, writer: str | None = None, *,
                  not_over_runs: bool = False) -> Path:
    """A command's output folder, checked before any work starts and named by its flag in errors; with `writer`, one
    that holds another kind of thing (with `not_over_runs`, or other runs in its subfolders) is refused
    (`refuse_foreign_folder`); with `create`, made now, so one that cannot be made fails here rather than after a
    model has loaded."""
    path = Path(path)
    blocking = file_in_the_way(path)
    if blocking == path:
        raise ValueError(f"{flag}: {str(path)!r} exists and is not a folder (give {flag} a folder path)")
    if blocking is not None:
        raise ValueError(f"{flag}: {str(path)!r} is under {str(blocking)!r}, which is a file")
    if writer is not None:
        refuse_foreign_folder(path, flag, writer, not_over_runs=not_over_runs)
    if create:
        try:
            make_folder(path)
        except OSError as exc:
            raise ValueError(f"{flag}: cannot create {str(path)!r}: {exc.strerror or exc}") from None
    return path


def umask() -> int:
    """The process umask, which new outputs are given modes under (`atomic_path`, `share_tree`). Read from /proc where
    Linux shows it: `os.umask`, the only other way, sets it to read it, and a file another thread made in between
    would get no mask at all; where it must be used, the umask in between is the most private one."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def share_tree(root: str | Path) -> Path:
    """Give a folder staged with `tempfile.mkdtemp` (always 0700), and everything in it, the modes `mkdir` and `open`
    would under the process umask (some writers, e.g. safetensors, make their files 0600): a dataset or checkpoint
    renamed into place ends up readable like any other output. A link is left alone: chmod follows it, and would
    open up whatever it points to (a 0600 key file outside the folder)."""
    mask = umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            if not os.path.islink(path := os.path.join(folder, name)):
                os.chmod(path, 0o666 & ~mask)
    return Path(root)


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file's document; a missing or unreadable file is named by `what` (e.g. "stats file 'x.json'"), as is a
    folder in its place (`--embodiment robot.json` naming a folder ended in Python's IsADirectoryError traceback)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{what} is a folder; accepted: a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None


def read_sweep_doc(folder: str | Path) -> dict[str, Any]:
    """The `SWEEP_FILE` in `folder` (a sweep of a training run's checkpoints, `sim.sweep.write_sweep`): the one reader
    of it (`sim.sweep.stored_sweep`, the sweep's page and its training run's). A missing file raises
    FileNotFoundError, a damaged one or one that is no sweep this worldpolicy reads ValueError (NewerFormatError where
    a newer one wrote it), each naming the file."""
    path = Path(folder) / SWEEP_FILE
    doc = read_json(path, f"sweep file {str(path)!r}")
    if not schema_matches(doc, SWEEP_SCHEMA, repr(str(path))) or not isinstance(doc.get("run"), str) \
            or not isinstance(doc.get("checkpoints"), list):
        found = doc.get("schema") if isinstance(doc, Mapping) else type(doc).__name__
        raise ValueError(f"{str(path)!r}: not a sweep of a training run's checkpoints (schema {found!r}; expected "
                         f"{SWEEP_SCHEMA!r} with its run and checkpoints)")
    return doc


def read_trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    """Checkpoint folder `checkpoint`'s `TRAINER_STATE_FILE` (its training run's record: the step, the config, the
    frames). The one reader of it: a missing file raises FileNotFoundError (no run saved the folder: a diffusers
    one, a hub id), one that is no JSON object (damaged, or not a run's) or of another "schema" ValueError, one a
    newer worldpolicy wrote NewerFormatError (a ValueError), each naming it (`check_version`: one without a schema, as
    versions before `TRAINER_STATE_SCHEMA` wrote them, is read as v1); a caller that can do without the record
    catches them (OSError, ValueError), and lets a NewerFormatError through where it would misread the checkpoint."""
    path = Path(str(checkpoint)) / TRAINER_STATE_FILE
    state = read_json(path, f"{TRAINER_STATE_FILE} {str(path)!r}")
    if not isinstance(state, dict):
        raise ValueError(f"{TRAINER_STATE_FILE} {str(path)!r} is not a training run's record: a JSON "
                         f"{type(state).__name__}, not an object")
    check_version(state, TRAINER_STATE_SCHEMA, f"{TRAINER_STATE_FILE} {str(path)!r}")
    return state


@dataclass(frozen=True)
class StoredProvenance:
    """A dataset's provenance as found on disk, unchecked: `value` is `PROVENANCE_FILE`'s document (`key` None), or
    for a dataset written before that file the value of info.json's `PROVENANCE_KEY` (`key` names it); `path` is the
    file it was read from, for an error that names it."""

    value: Any
    path: Path
    key: str | None


def stored_provenance(root: str | Path, info: Any = None) -> StoredProvenance | None:
    """Where the dataset at `root` says how worldpolicy made it, and what it says: `PROVENANCE_FILE`, else (a dataset
    written before it) info.json's `PROVENANCE_KEY`; None for a dataset that says neither (made elsewhere). `info`:
    info.json's document, where the caller has read it. The one place that knows where provenance is, for the dataset
    reader (`LeRobotDataset.provenance`, which refuses a value that is no object) and the lighter readers that only
    look (`recorded_seeds`, the `--overwrite` check of the commands that make datasets from others). Raises
    `read_json`'s FileNotFoundError or ValueError for a file that cannot be read."""
    own = Path(root) / PROVENANCE_FILE
    if own.exists():
        return StoredProvenance(read_json(own, PROVENANCE_FILE), own, None)
    path = Path(root) / "meta" / "info.json"
    if info is None:
        info = read_json(path, "meta/info.json")
    if not isinstance(info, dict) or PROVENANCE_KEY not in info:
        return None
    return StoredProvenance(info[PROVENANCE_KEY], path, PROVENANCE_KEY)


def provenance_document(root: str | Path) -> dict[str, Any] | None:
    """The provenance of the dataset at `root` (`stored_provenance`) when it is a JSON object, else None (none, a
    malformed one, a file that cannot be read): for the readers that only look, which leave refusing a malformed
    dataset to the dataset reader."""
    try:
        stored = stored_provenance(root)
    except (OSError, ValueError):
        return None
    return stored.value if stored is not None and isinstance(stored.value, dict) else None


def recorded_seeds(root: str | Path) -> tuple[str, list[int]] | None:
    """The task and env seeds a `dataset from-sim` recording at `root` holds (its provenance's `task`, `seeds`), or
    None for a dataset that does not say (made elsewhere) or cannot be read. `worldpolicy sim` checks its episodes
    against them and a training run's page picks its `sim --seed` past them, so a checkpoint is not evaluated on the
    scenes it was trained on unawares."""
    provenance = provenance_document(root)
    if provenance is None:
        return None
    task, seeds = provenance.get("task"), provenance.get("seeds")
    if not isinstance(task, str) or not isinstance(seeds, list) or not seeds \
            or not all(is_integer(s) for s in seeds):
        return None
    return task, seeds


def write_bytes_atomic(path: str | Path, data: str | bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def write_json_atomic(path: str | Path, doc: Any, indent: int = 1, ensure_ascii: bool = True) -> Path:
    return write_bytes_atomic(path, json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii))


def write_csv_atomic(path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """`rows` as CSV with a header of `columns` (each row's value of each; missing: empty), for a spreadsheet or
    `pandas.read_csv`: None an empty cell, a bool `true`/`false` (pandas reads either as a bool column), a list or
    dict its JSON."""
    import csv
    import io

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(row.get(name)) for name in columns] for row in rows)
    return write_bytes_atomic(path, text.getvalue())


# The most bytes of tensors one safetensors file of a checkpoint holds: diffusers' `save_pretrained` default, which
# a checkpoint's model weights are split by; `OPTIMIZER_FILE` and a sharded run's gathered weights are split alike
# (`safetensors_plan`), so a sharded run's save holds one file's tensors in host memory at a time. Read at each call.
MAX_SHARD_SIZE = "10GB"


def safetensors_index(file_name: str) -> str:
    """The name of the index that lists a sharded safetensors file's shards (diffusers' and transformers' form)."""
    return f"{file_name}.index.json"


def safetensors_plan(layout: dict[str, Any], file_name: str) -> dict[str, list[str]]:
    """Which tensors of `layout` (name -> tensor, any device: meta tensors give the sizes alone) each file holds, as
    diffusers' `save_pretrained` splits a model's (`huggingface_hub.split_torch_state_dict_into_shards`, in
    `layout`'s order, at most `MAX_SHARD_SIZE` a file): `file_name` alone when all fit in it, else
    `<stem>-0000i-of-0000n.safetensors` (`diffusion_pytorch_model-00001-of-00007.safetensors`)."""
    from huggingface_hub import split_torch_state_dict_into_shards

    pattern = file_name.replace(".safetensors", "{suffix}.safetensors")
    return split_torch_state_dict_into_shards(layout, filename_pattern=pattern,
                                              max_shard_size=MAX_SHARD_SIZE).filename_to_tensors


def write_safetensors(folder: Path, file_name: str, layout: dict[str, Any], tensors_of: Any,
                      metadata: dict[str, str] | None = None) -> None:
    """`layout`'s tensors as the files `safetensors_plan` names, written one at a time into `folder` (a staged one:
    `staged_folder` publishes them together), and the index diffusers writes beside several
    (`safetensors_index`). `tensors_of(names)` gives one file's tensors (on CPU) when it is written: at most one
    file's worth is held, not all of them."""
    from safetensors.torch import save_file

    plan = safetensors_plan(layout, file_name)
    for name, names in plan.items():
        tensors = tensors_of(names)
        save_file({key: tensors[key].contiguous() for key in names}, str(folder / name), metadata=metadata)
        del tensors
    if len(plan) > 1:
        total = sum(value.numel() * value.element_size() for value in layout.values())
        index = {"metadata": {"total_size": total},
                 "weight_map": {key: name for name, names in plan.items() for key in names}}
        write_bytes_atomic(folder / safetensors_index(file_name), json.dumps(index, indent=2, sort_keys=True) + "\n")


def safetensors_files(folder: Path, file_name: str) -> list[str]:
    """The files `write_safetensors` wrote as `file_name` in `folder`: it alone, or its index and the shards the index
    names (sorted); [] when neither is there."""
    index = folder / safetensors_index(file_name)
    if (folder / file_name).is_file():
        return [file_name]
    if not index.is_file():
        return []
    return [index.name, *sorted(set(json.loads(index.read_text())["weight_map"].values()))]


def read_safetensors(folder: Path, file_name: str) -> dict[str, Any]:
    """Every tensor `write_safetensors` wrote as `file_name` in `folder` (one file or its shards), on the CPU."""
    from safetensors.torch import load_file

    names = safetensors_files(folder, file_name)
    if not names:
        raise FileNotFoundError(f"{folder / file_name} is missing (nor is there a sharded "
                                f"{safetensors_index(file_name)})")
    tensors: dict[str, Any] = {}
    for name in names:
        if name != safetensors_index(file_name):
            tensors.update(load_file(str(folder / name)))
    return tensors

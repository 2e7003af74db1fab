"""Windows, simulated on Linux (no Windows machine runs these tests): what a Windows Python lacks is taken away
(fcntl, resource, pwd; SIGUSR1, SIGHUP; O_NOFOLLOW, O_DIRECTORY, pread, geteuid) and msvcrt is a stand-in with its
contract, so `import worldpolicy` and the command line are checked, and the locks' calls; not NTFS itself."""

from __future__ import annotations

import json
import subprocess
import sys

SIMULATED_WINDOWS = r"""
import contextlib, errno, fcntl as posix_fcntl, io, json, os, signal, sys, types
from pathlib import Path

for name in ("fcntl", "resource", "pwd", "grp", "termios"):
    sys.modules[name] = None  # an import of it raises ImportError, as on Windows
for name in ("SIGUSR1", "SIGUSR2", "SIGHUP", "SIGQUIT", "SIGALRM", "pthread_sigmask"):
    delattr(signal, name)
for name in ("O_NOFOLLOW", "O_DIRECTORY", "pread", "geteuid", "getuid"):
    delattr(os, name)

calls = []  # (the file's position, mode, bytes) of each msvcrt.locking call
msvcrt = types.ModuleType("msvcrt")
msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK = 0, 1, 2


def locking(fd, mode, nbytes):  # msvcrt's contract: from the file's position; LK_NBLCK held by another: EACCES
    calls.append((os.lseek(fd, 0, os.SEEK_CUR), mode, nbytes))
    try:
        posix_fcntl.flock(fd, posix_fcntl.LOCK_EX | (posix_fcntl.LOCK_NB if mode == msvcrt.LK_NBLCK else 0))
    except BlockingIOError:
        raise OSError(errno.EACCES, "Permission denied") from None


msvcrt.locking = locking
sys.modules["msvcrt"] = msvcrt
from worldpolicy import fileio
del sys.modules["msvcrt"]  # for fileio only: the standard library (subprocess) would take Linux for Windows

import worldpolicy, worldpolicy.cli

out = Path(sys.argv[1])
seen = {"windows": fileio._WINDOWS, "stops": [int(s) for s in fileio.STOP_PRIORITY],
        "exit": fileio.exit_status(fileio.interruption([signal.SIGINT, signal.SIGTERM]))}
with fileio.folder_lock(out / "run", "--out") as lock:
    seen["lock_file"] = lock.read_text()  # the PID at the file's start: the lock lies far past it
    seen["holder"] = fileio.folder_holder(out / "run").pid
    try:
        with fileio.folder_lock(out / "run", "--out"):
            pass
    except fileio.FolderInUse as exc:
        seen["refused"] = str(exc)
seen["lock_left"] = lock.exists()
seen["held_after"] = fileio.folder_holder(out / "run") is not None
with fileio.dataset_lock(out / "ds", "--out", "`dataset label`"):
    seen["dataset_holder"] = fileio.folder_holder(out / "ds").command
with fileio.atomic_path(out / "a.json") as tmp:
    tmp.write_text("{}")
with fileio.staged_folder(out / "ckpt", durable=True) as tmp:
    (tmp / "w.bin").write_bytes(b"1")
with fileio.staged_folder(out / "ckpt", durable=True) as tmp:  # replacing the one there
    (tmp / "w.bin").write_bytes(b"2")
seen["ckpt"] = (out / "ckpt" / "w.bin").read_bytes().decode()
seen["left"] = sorted(os.listdir(out))
seen["calls"] = sorted({(at == fileio._WINDOWS_LOCK_AT, mode, n) for at, mode, n in calls})
help = io.StringIO()
with contextlib.redirect_stdout(help):
    try:
        worldpolicy.cli.main(["--help"])
    except SystemExit as exc:
        seen["help_exit"] = exc.code
seen["help"] = help.getvalue()
print(json.dumps(seen))
"""


def test_import_locks_and_help_without_what_windows_lacks(tmp_path):
    """`import worldpolicy` on Windows failed: fileio imported fcntl and named signal.SIGUSR1 at import. Now the run
    folder's and dataset's locks are msvcrt's (exclusive, non-blocking: a second run is refused, naming the holder's
    PID, which the lock leaves readable), atomic writes and staged folders work, and only the signals the platform
    has are stop signals (Ctrl-C, SIGTERM: 143 for the most urgent)."""
    done = subprocess.run([sys.executable, "-c", SIMULATED_WINDOWS, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)  # its stderr said below
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["windows"] and seen["stops"] == [15, 2] and seen["exit"] == 143
    pid = seen["lock_file"].strip()
    assert seen["lock_file"] == f"{pid}\n" and seen["holder"] == pid
    assert f"in use by another worldpolicy process (PID {pid}," in seen["refused"]
    assert not seen["lock_left"] and not seen["held_after"]
    assert seen["dataset_holder"] == "`dataset label`"
    assert seen["ckpt"] == "2"
    assert seen["left"] == ["a.json", "ckpt"]  # no temp file, staging, aside nor lock file stays beside them
    # every lock one byte far past the file's end (`_WINDOWS_LOCK_AT`), tried without waiting (LK_NBLCK = 2)
    assert seen["calls"] == [[True, 2, 1]]
    assert seen["help_exit"] == 0 and "usage: worldpolicy" in seen["help"]

"""Datasets named by their hub id (owner/name), as LeRobot opens them: fetched with huggingface_hub's
snapshot_download into the hub's cache (here: served from a local folder, no network), refused where the name is a
path here, and one clear line when the hub cannot be reached."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from worldpolicy.cli import main
from worldpolicy.data import LeRobotDataset
from worldpolicy.hub import dataset_snapshot


@pytest.fixture(autouse=True)
def _fresh_snapshots():
    """`dataset_snapshot` fetches once per process: each test starts with none fetched."""
    dataset_snapshot.cache_clear()
    yield
    dataset_snapshot.cache_clear()


@pytest.fixture
def served(monkeypatch, small_dataset) -> list[dict[str, Any]]:
    """snapshot_download serving `small_dataset` as the hub's snapshot of any repository; returns its calls."""
    ds, _ = small_dataset
    calls: list[dict[str, Any]] = []

    def download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(ds.root)

    monkeypatch.setattr("huggingface_hub.snapshot_download", download)
    return calls


def test_dataset_info_by_hub_id(served, small_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "info", "someone/pusht"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    assert served == [{"repo_id": "someone/pusht", "repo_type": "dataset", "revision": None,
                       "allow_patterns": None}]
    LeRobotDataset.open("someone/pusht")
    assert len(served) == 1  # fetched once per process: a training run opens its dataset several times


def test_dataset_select_from_a_hub_id(served, small_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "select", "someone/pusht", "--episodes", "0,2", "--out", "kept"]) == 0
    kept = LeRobotDataset.open(tmp_path / "kept")
    assert kept.episode_lengths.tolist() == [12, 9]
    assert served[0]["repo_type"] == "dataset"


def test_dataset_show_by_hub_id_names_it_so(small_dataset, tmp_path, monkeypatch):
    """`dataset show` opens a hub id as every reader does (`LeRobotDataset.open`); its record and page name the hub id,
    not the hub's cache folder, whose name is a commit hash."""
    import shutil

    ds, _ = small_dataset
    snapshot = tmp_path / "cache" / "datasets--someone--pusht" / "snapshots" / ("0123abcd" * 5)
    shutil.copytree(ds.root, snapshot)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "show", "someone/pusht", "--out", "look", "--episodes", "0", "--no-progress"]) == 0
    assert json.loads((tmp_path / "look" / "dataset_show.json").read_text())["root"] == "someone/pusht"
    page = (tmp_path / "look" / "index.html").read_text()
    assert "<title>dataset · someone/pusht" in page and "0123abcd" not in page


def test_select_and_merge_of_a_hub_dataset_record_its_hub_id(small_dataset, tmp_path, monkeypatch, capsys):
    """The source is named by its hub id in the new dataset's provenance and card, not by the hub's cache folder
    (`.../datasets--owner--name/snapshots/<rev>`), which names nothing on another machine."""
    import shutil

    ds, _ = small_dataset
    snapshot = tmp_path / "cache" / "datasets--someone--pusht" / "snapshots" / "0123abcd"
    shutil.copytree(ds.root, snapshot)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "select", "someone/pusht", "--episodes", "0", "--out", "kept"]) == 0
    assert main(["dataset", "merge", "someone/pusht", "kept", "--out", "both"]) == 0
    kept, both = LeRobotDataset.open(tmp_path / "kept"), LeRobotDataset.open(tmp_path / "both")
    assert kept.provenance["dataset"] == "someone/pusht@0123abcd"  # the commit read: `hub.pinned_id`
    assert [row["dataset"] for row in both.provenance["datasets"]] == ["someone/pusht@0123abcd", str(tmp_path / "kept")]
    assert '`dataset` "someone/pusht@0123abcd"' in (tmp_path / "kept" / "README.md").read_text()
    assert "datasets--" not in (tmp_path / "kept" / "README.md").read_text()


def test_a_v21_hub_dataset_converts_by_its_hub_id(tmp_path, monkeypatch, capsys):
    """A hub dataset still in LeRobot v2.1 is fetched as any is (the opener refuses a 2.x one only after the download,
    pointing at `dataset convert`) and converted; the result names it by its hub id."""
    from dataset_factory import frame_ramp, write_v2_dataset

    snapshot = tmp_path / "cache" / "datasets--someone--old" / "snapshots" / "0123abcd"
    write_v2_dataset(snapshot, [{"frames": {"action": np.ones((3, 2), np.float32)},
                                 "videos": {"observation.images.top": frame_ramp(3)}, "tasks": ["push"] * 3}])
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "info", "someone/old"]) == 2
    assert "worldpolicy dataset convert someone/old --out NEW" in capsys.readouterr().err  # its hub id, not the cache
    assert main(["dataset", "convert", "someone/old", "--out", "new", "--no-progress"]) == 0
    converted = LeRobotDataset.open(tmp_path / "new")
    assert converted.provenance == {"source": "worldpolicy dataset convert", "dataset": "someone/old@0123abcd",
                                    "codebase_version": "v2.1"}
    assert converted.episode(0).frame_tasks == ("push",) * 3


def test_a_local_folder_wins_and_a_path_from_here_is_no_hub_id(served, small_dataset, tmp_path, monkeypatch, capsys):
    ds, _ = small_dataset
    monkeypatch.chdir(ds.root.parent.parent)
    local = f"{ds.root.parent.name}/{ds.root.name}"  # shaped like owner/name, and a folder here
    assert LeRobotDataset.open(local).num_episodes == 3
    assert main(["dataset", "info", f"{ds.root.parent.name}/missing"]) == 2
    err = capsys.readouterr().err
    assert (f"dataset '{ds.root.parent.name}/missing' does not exist: {ds.root.parent.name!r} is a folder here without "
            "'missing' (a hub id's owner is not a local folder)") in err
    assert main(["dataset", "info", "./nope/x"]) == 2
    assert "is not a directory (give a LeRobot dataset's folder, or a hub id like 'lerobot/pusht')" \
        in capsys.readouterr().err
    assert served == []  # never asked the hub


def test_unreachable_hub_is_one_line(tmp_path, monkeypatch, capsys):
    """What huggingface_hub itself raises without the hub (offline mode, an empty cache): no network is used."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "show", "lerobot/pusht", "--out", "pages"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldpolicy dataset show: error: could not fetch dataset 'lerobot/pusht' from the Hugging "
                          "Face hub (LocalEntryNotFoundError: ")
    assert err.endswith("HF_HUB_OFFLINE is set and the hub's cache holds no copy: unset it (or set HF_HUB_OFFLINE=0) "
                        "to fetch it, or download it elsewhere (`hf download lerobot/pusht --repo-type dataset "
                        "--local-dir FOLDER`) and give the folder"), err
    assert "\n" not in err
    assert not (tmp_path / "pages").exists()


@pytest.mark.parametrize(("status", "fix"), [
    (None, "Offline? Download it elsewhere"),
    (401, ("the token sent (HF_TOKEN, else the one `hf auth login` stored) is not valid: log in again (`hf auth "
           "login`) or set HF_TOKEN to a valid one (unset it, or `hf auth logout`, for a public repository), or "
           "download it elsewhere")),
])
def test_a_hub_that_cannot_be_reached_or_refuses_the_token_names_the_fix(tmp_path, monkeypatch, capsys, status, fix):
    """An expired HF_TOKEN fails even a public repository with 401: that was "Offline? Download it elsewhere"."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("GET", "https://huggingface.co/api/datasets/lerobot/pusht/revision/main")
    error = (httpx2.ConnectError("[Errno -2] Name or service not known") if status is None else
             HfHubHTTPError("401 Client Error: Unauthorized. Invalid credentials in Authorization header",
                            response=httpx2.Response(status, request=request)))

    def download(repo_id: str, **kwargs: Any) -> str:
        raise error

    monkeypatch.setattr("huggingface_hub.snapshot_download", download)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "info", "lerobot/pusht"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"). {fix} (`hf download lerobot/pusht --repo-type dataset --local-dir FOLDER`) and give the folder" in err


@pytest.mark.parametrize("action", ["info", "check", "frame", "label", "eval", "show", "select", "merge", "convert"])
def test_each_dataset_commands_help_says_it_takes_a_hub_id(action):
    """docs/data.md says every command that reads a dataset takes its hub id; their --help said "dataset folder"
    (convert's alone named the hub id), so a user reading the help would not try one."""
    import argparse

    from worldpolicy.cli import build_parser

    dataset = next(a for a in build_parser()._actions if a.dest == "command").choices["dataset"]
    command = next(a for a in dataset._actions if isinstance(a, argparse._SubParsersAction)).choices[action]
    positional = next(a for a in command._actions if not a.option_strings and a.dest in ("root", "roots"))
    assert "hub id (owner/name" in positional.help and "@REV" in positional.help  # a revision pinned too


def test_a_pinned_hub_dataset_is_read_at_its_revision_and_recorded_by_its_commit(small_dataset, tmp_path,
                                                                                 monkeypatch, capsys):
    """`OWNER/NAME@REV` (a branch, tag or commit, as `hf` and LeRobot users pin one) reads that revision, not main; what
    a derived dataset records names the commit read (the snapshot folder's name), so the source can be fetched again
    as it was. A revision left empty is refused naming the parameter, before the hub is asked."""
    import shutil

    ds, _ = small_dataset
    commit = "0123abcd" * 5
    snapshot = tmp_path / "cache" / "datasets--someone--pusht" / "snapshots" / commit
    shutil.copytree(ds.root, snapshot)
    calls: list[dict[str, Any]] = []

    def download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(snapshot)

    monkeypatch.setattr("huggingface_hub.snapshot_download", download)
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "select", "someone/pusht@v1.0", "--episodes", "0", "--out", "kept"]) == 0
    assert [(call["repo_id"], call["revision"]) for call in calls] == [("someone/pusht", "v1.0")]
    assert LeRobotDataset.open(tmp_path / "kept").provenance["dataset"] == f"someone/pusht@{commit}"
    capsys.readouterr()
    assert main(["dataset", "info", "someone/pusht@"]) == 2
    err = capsys.readouterr().err
    assert "dataset='someone/pusht@': expected OWNER/NAME@REV" in err and "\n" not in err.strip()
    assert len(calls) == 1  # the malformed one never reached the hub


def test_a_revision_the_hub_lacks_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from huggingface_hub.errors import RevisionNotFoundError

    def download(repo_id: str, **kwargs: Any) -> str:
        raise RevisionNotFoundError("404 Client Error. Revision Not Found",
                                    response=SimpleNamespace(headers={}, status_code=404, request=None))

    monkeypatch.setattr("huggingface_hub.snapshot_download", download)
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "info", "someone/pusht@nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("worldpolicy dataset info: error: dataset 'someone/pusht' has no revision 'nope' on the hub: give "
                   "one of its branches, tags or commits after the `@` "
                   "(https://huggingface.co/datasets/someone/pusht/tree/main lists them), or none for main"), err

"""`worldpolicy push`: what it would send to the Hugging Face hub (no network here: HfApi's methods are replaced by
ones that record their calls and list the files as huggingface_hub's upload does), and what it refuses before sending
anything."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from huggingface_hub import CommitOperationDelete, HfApi, RepoFile
from huggingface_hub.errors import HTTPError, RepositoryNotFoundError

from worldpolicy.cli import main
from worldpolicy.fileio import LOCK_FILE, dataset_lock, folder_lock
from worldpolicy.hub import BAD_TOKEN, PUSH_RECORD, HubError, hub_id_shaped, push, shared_files, stale_files

COMMIT = "0123abcd" * 5  # a snapshot's folder in the hub's cache is named by its commit


class FakeHub:
    """HfApi's create_repo, repo_info, create_branch, list_repo_tree, hf_hub_download and create_commit on one
    repository kept here, recorded: `remote`, the files it holds (`.gitattributes`, which the hub makes, and what
    `files` says an earlier push left: one of worldpolicy's, its `PUSH_RECORD` listing them, where `recorded`),
    `private`, its visibility (None: no repository yet; set as create_repo makes it, as the hub does), `head`, its
    branch's commit, which a commit pinned to another (`parent_commit`) is refused for (412), as the hub does; the last
    push's files as they land (`uploaded`: their names, `sent`: their bytes, less the record, `record`'s files) and its
    deletions (`deleted`), a push being what follows a repo_info. `before_commit`: called before each commit (an edit
    on the hub's page). A commit that changes nothing the branch holds now is skipped as huggingface_hub skips it:
    before the hub sees its pin, answered with the branch's head, its additions not marked committed (`skipped`
    counts them); a commit made marks them. `private` None: repo_info finds no repository (a dry run's first).
    list_repo_tree gives each file as the hub does: its size and git blob id, and, for one the hub keeps in LFS
    (`LFS_SUFFIXES`, as its .gitattributes says), the LFS pointer's blob id and the content's sha256 and size."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None, files: list[str] = (),
                 private: bool | None = None, recorded: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploaded: list[str] = []
        self.sent: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.contents: dict[str, bytes] = {name: b"earlier" for name in {".gitattributes", *files}}
        if recorded:
            self.contents[PUSH_RECORD] = json.dumps({"files": sorted(files)}).encode()
        self.private = private
        self.fail = fail
        self.head = "c0"
        self.commits: list[dict[str, Any]] = []
        self.skipped = 0
        self.before_commit = lambda: None
        self.folder = Path(tempfile.mkdtemp())
        for name in ("create_repo", "repo_info", "create_branch", "list_repo_tree", "hf_hub_download",
                     "create_commit"):
            monkeypatch.setattr(HfApi, name, self._recorder(name))

    @property
    def remote(self) -> list[str]:
        return sorted(self.contents)

    @property
    def record(self) -> list[str]:
        return json.loads(self.contents[PUSH_RECORD])["files"]

    def edit(self, name: str, content: bytes = b"web") -> None:
        """A commit made on the hub's page (or by another push): `name` added, holding `content`."""
        self.contents[name] = content
        self.head = f"c{len(self.commits) + 1}-web"

    def _recorder(self, name: str):
        def call(api: HfApi, *args: Any, **kwargs: Any) -> Any:
            if self.fail is not None:
                raise self.fail
            self.calls.append((name, {"args": args, **kwargs}))
            if name == "create_repo" and self.private is None:
                self.private = kwargs["private"]
            if name == "repo_info":
                if self.private is None:
                    raise _refused(404, "Repository Not Found", RepositoryNotFoundError)
                self.sent, self.uploaded, self.deleted = {}, [], []
                return SimpleNamespace(private=self.private, sha=self.head)
            if name == "list_repo_tree":
                assert kwargs["revision"] == self.head and kwargs["recursive"]
                return iter([_repo_file(name, self.contents[name]) for name in self.remote])
            if name == "hf_hub_download":
                assert kwargs["revision"] == self.head
                (self.folder / args[1]).write_bytes(self.contents[args[1]])
                return str(self.folder / args[1])
            if name == "create_commit":
                self.before_commit()
                # as huggingface_hub's CommitInfo names a commit: a dataset repository's under /datasets/
                kind = "datasets/" if kwargs["repo_type"] == "dataset" else ""
                url = f"https://huggingface.co/{kind}{kwargs['repo_id']}/commit/{{}}"
                if all(not isinstance(op, CommitOperationDelete) and self.contents.get(op.path_in_repo) == _bytes(op)
                       for op in kwargs["operations"]):  # nothing to change: no commit, the branch's head answered
                    self.skipped += 1
                    return SimpleNamespace(commit_url=url.format(self.head), oid=self.head)
                if kwargs["parent_commit"] != self.head:
                    raise _refused(412, "A commit has happened since. Please refresh and try again.")
                for op in kwargs["operations"]:
                    if isinstance(op, CommitOperationDelete):
                        del self.contents[op.path_in_repo]
                        self.deleted.append(op.path_in_repo)
                        continue
                    self.contents[op.path_in_repo] = _bytes(op)
                    op._is_committed = True
                    if op.path_in_repo != PUSH_RECORD:
                        self.sent[op.path_in_repo] = self.contents[op.path_in_repo]
                self.uploaded, self.deleted = sorted(self.sent), sorted(self.deleted)
                self.commits.append(kwargs)
                self.head = f"c{len(self.commits)}"
                return SimpleNamespace(commit_url=url.format(self.head), oid=self.head)
            return None

        return call

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


LFS_SUFFIXES = (".safetensors", ".parquet", ".mp4")  # what the hub's .gitattributes keeps in LFS, of what tests push


def _repo_file(name: str, content: bytes) -> RepoFile:
    """What the hub's tree lists for file `name` holding `content`: git's blob id (`git hash-object`: the sha1 of a
    header and the content; of an LFS file, of its pointer), an LFS file's sha256."""
    def blob_id(data: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    if not name.endswith(LFS_SUFFIXES):
        return RepoFile(path=name, size=len(content), oid=blob_id(content))
    sha256 = hashlib.sha256(content).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(content)}\n".encode()
    return RepoFile(path=name, size=len(content), oid=blob_id(pointer),
                    lfs={"size": len(content), "oid": sha256, "pointerSize": len(pointer)})


def _refused(status: int, reason: str, error: type[Exception] | None = None) -> Exception:
    """The error huggingface_hub raises for an HTTP `status` the hub answered (`error`: its class, if not the
    general one)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/models/x/commit/main")
    return (error or HfHubHTTPError)(f"{status} Client Error: {reason}",
                                     response=httpx2.Response(status, request=request))


def _bytes(op: Any) -> bytes:
    """What a CommitOperationAdd sends."""
    with op.as_file() as file:
        return file.read()


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path) -> Path:
    """A copy of the tiny checkpoint with what a folder may hold besides: a running command's lock file, a staged
    folder a killed writer left, a hidden file inside a part."""
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / LOCK_FILE).write_text("12345\n")  # a lock file left behind, unlocked
    (folder / ".ckpt.abc123").mkdir()
    (folder / ".ckpt.abc123" / "model_index.json").write_text("{}")
    (folder / "transformer" / ".notes.swp").write_text("x")
    return folder


def test_push_checkpoint_to_a_model_repo(checkpoint, token, monkeypatch, capsys):
    hub = FakeHub(monkeypatch)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--private", "--message", "first"]) == 0
    # no branch made without --revision; a new repository made private is private: nothing to refuse; the files
    # listed, and the one commit made, at the branch's head as the push began
    assert hub.names() == ["create_repo", "repo_info", "repo_info", "list_repo_tree", "create_commit"]
    created, uploaded = hub.calls[0][1], hub.calls[-1][1]
    assert created["args"] == ("me/tiny",) and created["repo_type"] == "model" and created["private"] is True
    assert created["exist_ok"] is True
    assert uploaded["repo_type"] == "model" and uploaded["commit_message"] == "first" and uploaded["revision"] is None
    assert uploaded["parent_commit"] == "c0" and hub.calls[2][1]["revision"] is None
    expected = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(checkpoint).parts))
    assert hub.uploaded == expected and "model_index.json" in expected
    assert not any(name.startswith(".") or "/." in name for name in hub.uploaded)  # lock, staging, hidden: not sent
    out = capsys.readouterr().out
    assert f"({len(expected)} files" in out and "a diffusers checkpoint" in out and "me/tiny/commit/c1" in out
    assert (checkpoint / LOCK_FILE).read_text() == "12345\n"  # the folder only read


@pytest.mark.parametrize("adapter", [False, True])
def test_push_leaves_a_checkpoints_training_state_out_unless_asked(checkpoint, token, monkeypatch, capsys, adapter):
    """optimizer.safetensors (and a merged LoRA checkpoint's adapters) only a resume reads: not sent by default, said
    so; an adapter checkpoint's adapters are what it loads, always sent."""
    (checkpoint / "optimizer.safetensors").write_bytes(b"o" * 3000)
    (checkpoint / "adapter.safetensors").write_bytes(b"a" * 100)
    (checkpoint / "transformer" / "optimizer.safetensors").write_bytes(b"x")  # a part's file of that name: not it
    (checkpoint / "trainer_state.json").write_text('{"step": 1}')  # loading reads it (the embodiment): sent
    if adapter:
        (checkpoint / "base_model.json").write_text("{}")
    hub = FakeHub(monkeypatch)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0
    assert "optimizer.safetensors" not in hub.uploaded and "transformer/optimizer.safetensors" in hub.uploaded
    assert ("adapter.safetensors" in hub.uploaded) is adapter
    assert "model_index.json" in hub.uploaded and "trainer_state.json" in hub.uploaded  # what loading reads
    assert hub.sent["trainer_state.json"] == b'{"step": 1}'  # no path in it: sent as it is
    left = "optimizer.safetensors, 0.0 MB" if adapter else "optimizer.safetensors, adapter.safetensors, 0.0 MB"
    out = capsys.readouterr().out
    assert f"left out its training state, which only a resume reads ({left}): --with-training-state" in out
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--with-training-state"]) == 0
    assert {"optimizer.safetensors", "adapter.safetensors"} <= set(hub.remote)
    # what the repository held already (an adapter checkpoint's adapters, sent by the first push) not sent again
    assert hub.uploaded == ["optimizer.safetensors"] if adapter else ["adapter.safetensors", "optimizer.safetensors"]
    assert "left out" not in capsys.readouterr().out


def test_a_sharded_optimizer_state_is_training_state_too(checkpoint):
    """Past `fileio.MAX_SHARD_SIZE` the AdamW state is diffusers' shards and their index: all of it left out."""
    import json

    from worldpolicy.hub import training_state

    shards = [f"optimizer-0000{i}-of-00002.safetensors" for i in (1, 2)]
    for name in shards:
        (checkpoint / name).write_bytes(b"o")
    index = {"metadata": {"total_size": 2}, "weight_map": {"0.exp_avg": shards[0], "0.exp_avg_sq": shards[1]}}
    (checkpoint / "optimizer.safetensors.index.json").write_text(json.dumps(index))
    assert training_state(checkpoint) == ["optimizer.safetensors.index.json", *shards]


def test_push_shows_a_checkpoints_run_record_without_local_paths(checkpoint, tmp_path, token, monkeypatch):
    """trainer_state.json goes (loading reads the embodiment from it), its config's paths as the card shows them: a
    hub id, else a folder's own name; the local file, which a resume reads, is untouched. The pushed files, read back
    as a checkpoint folder, give the embodiment the local one gives."""
    from worldpolicy.policy import Policy, checkpoint_embodiment, trained_embodiment
    from worldpolicy.train.config import TrainConfig, changed_settings

    base = tmp_path / "hf" / "models--nvidia--base" / "snapshots" / COMMIT
    config = TrainConfig().to_dict()  # as a run stores it: its paths absolute
    config.update(output_dir=str(tmp_path / "runs" / "pick"), checkpoint=str(base), embodiment="droid/relative_pose")
    config["data"].update(dataset=str(tmp_path / "data" / "pick_ds"), cache_dir=str(tmp_path / "cache"),
                          video_keys=["observation.image.wrist"])
    home = tmp_path / "home" / "alice"
    state = {"step": 10, "config": config, "frames": {"cameras": {"wrist": [64, 96]}},
             "objective_weights": {"policy": 1}, "software": {"worldpolicy": "0.1.0", "torch": "2.5.0"},
             # `extras.run_record`: the line as typed and the folder it was typed in; the weights it started from
             "command": f"worldpolicy train --data {tmp_path / 'data' / 'pick_ds'} --output-dir 'runs/my pick'",
             "cwd": str(home), "base_checkpoint": {"path": str(base), "files": "ab12"}}
    local = json.dumps(state, indent=1)
    (checkpoint / "trainer_state.json").write_text(local)
    hub = FakeHub(monkeypatch)
    push(checkpoint, "me/pick")
    assert (checkpoint / "trainer_state.json").read_text() == local  # what a resume reads, kept
    sent = json.loads(hub.sent["trainer_state.json"])
    assert str(tmp_path) not in hub.sent["trainer_state.json"].decode()
    shown = {"output_dir": "pick", "checkpoint": "nvidia/base", "embodiment": "droid/relative_pose",
             "data": {**config["data"], "dataset": "pick_ds", "cache_dir": "cache"}}
    assert sent["config"] == {**config, **shown}
    assert {key: sent[key] for key in ("step", "frames", "objective_weights", "software")} == \
        {key: state[key] for key in ("step", "frames", "objective_weights", "software")}
    # the command line's paths by name, relative ones as typed; not the folder it was typed in (a user name)
    assert sent["command"] == "worldpolicy train --data pick_ds --output-dir 'runs/my pick'"
    assert sent["cwd"] is None and "alice" not in hub.sent["trainer_state.json"].decode()
    assert sent["base_checkpoint"] == {"path": "nvidia/base", "files": "ab12"}
    assert hub.sent["model_index.json"] == (checkpoint / "model_index.json").read_bytes()  # the rest as it is
    pulled = tmp_path / "pulled"
    for name, data in hub.sent.items():
        (pulled / name).parent.mkdir(parents=True, exist_ok=True)
        (pulled / name).write_bytes(data)
    assert trained_embodiment(pulled) == trained_embodiment(checkpoint) == "droid/relative_pose"
    assert checkpoint_embodiment(pulled, None) == checkpoint_embodiment(checkpoint, None) == "droid/relative_pose"
    assert Policy.check_pretrained(str(pulled))[0].key == "droid/relative_pose"
    # pushed with its training state and resumed on another machine: its folders by their names are the same folders
    moved = {**config, "checkpoint": "nvidia/base", "data": {**config["data"], "dataset": "/elsewhere/pick_ds"}}
    assert changed_settings(sent["config"], moved) == []
    other = {**moved, "data": {**moved["data"], "dataset": "/elsewhere/place_ds"}}
    assert changed_settings(sent["config"], other) == ["data.dataset: 'pick_ds' -> '/elsewhere/place_ds'"]
    # pushed again: compared as the copy sent, not the local file (whose paths differ), it is held, not sent again
    again = push(checkpoint, "me/pick")
    assert again.commits == 0 and again.sent == hub.uploaded == [] and "trainer_state.json" in again.unchanged


def test_push_dataset_to_a_dataset_repo_on_a_branch(tmp_path, token, monkeypatch):
    root = tmp_path / "ds"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text("{}")
    (root / "data").mkdir()
    (root / "data" / "file-000.parquet").write_bytes(b"x")
    hub = FakeHub(monkeypatch)
    pushed = push(root, "me/ds", revision="v1")
    # public: not asked first; the branch's head, after it is made
    assert hub.names() == ["create_repo", "create_branch", "repo_info", "list_repo_tree", "create_commit"]
    assert hub.calls[0][1]["repo_type"] == hub.calls[1][1]["repo_type"] == "dataset"
    assert hub.calls[0][1]["private"] is False
    assert hub.calls[1][1]["branch"] == "v1" and hub.calls[2][1]["revision"] == hub.calls[4][1]["revision"] == "v1"
    assert pushed.files == hub.uploaded == ["data/file-000.parquet", "meta/info.json"]
    assert pushed.repo_type == "dataset" and pushed.what == "a LeRobot dataset" and pushed.size == 3


def test_a_push_over_an_earlier_one_leaves_the_repository_as_the_folder_is(checkpoint, tmp_path, token, monkeypatch,
                                                                            capsys):
    """What the previous push left that the folder no longer has goes in its last commit: a dataset re-made with fewer
    episodes would otherwise keep meta/episodes and data files that LeRobot and `LeRobotDataset` read as its own; a
    checkpoint pushed over another would keep that one's embodiment.json (read as this one's) and its training state
    (resumed with these weights). The hub's own .gitattributes stays, and the push's record names what it sent."""
    root = tmp_path / "ds"
    for name in ("meta/info.json", "meta/episodes/chunk-000/file-000.parquet", "data/chunk-000/file-000.parquet",
                 "README.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    earlier = ["meta/episodes/chunk-000/file-001.parquet", "data/chunk-000/file-001.parquet", "README.md"]
    hub = FakeHub(monkeypatch, files=earlier, recorded=True)
    pushed = push(root, "me/ds")
    assert hub.remote == sorted([".gitattributes", PUSH_RECORD, *pushed.files]) and hub.record == pushed.files
    assert pushed.removed == hub.deleted == ["data/chunk-000/file-001.parquet",
                                             "meta/episodes/chunk-000/file-001.parquet"]
    assert pushed.kept == [] and pushed.commits == 1

    hub = FakeHub(monkeypatch, files=["embodiment.json", "optimizer.safetensors", "model_index.json"], recorded=True)
    (checkpoint / "optimizer.safetensors").write_bytes(b"o")  # this checkpoint's own: left out, the other's removed
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0
    assert hub.deleted == ["embodiment.json", "optimizer.safetensors"] and "model_index.json" in hub.uploaded
    assert hub.remote == sorted([".gitattributes", PUSH_RECORD, *hub.uploaded])
    out = capsys.readouterr().out
    # the folder still has optimizer.safetensors: not said to be gone, but the training state this push leaves out
    assert ("removed 2 files there that this push does not send (['embodiment.json', 'optimizer.safetensors']): "
            f"what an earlier push or upload left that {checkpoint} does not have and the training state this push "
            "leaves out (--with-training-state sends this one's); the hub's history keeps them") in out
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0  # nothing left over: nothing said
    assert hub.deleted == [] and "removed" not in capsys.readouterr().out


def test_a_first_push_over_an_older_model_removes_its_files_and_keeps_its_card(checkpoint, tmp_path, token,
                                                                               monkeypatch, capsys):
    """A repository with no push record (made on the hub's page, uploaded with `hf upload`, pushed by an older
    worldpolicy) lost nothing: a checkpoint pushed over an older model left that one's shards, adapter and part
    configs beside its own, which a later load could read as this one's. Every file a loader reads as part of a
    checkpoint (`LOADED_PATTERNS`; a JSON file of a name a loader reads at the top, any in one of this checkpoint's
    parts) goes in the same commit; a card, its figures, a license and the user's own JSON files (an evaluation's
    results, a folder no part of this checkpoint) stay, said with the command that removes them, and the hub's
    .gitattributes is never touched. A file added on the hub's page after a push stays too, and a dataset's older
    episodes go as a checkpoint's shards do."""
    older = ["transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
             "transformer/diffusion_pytorch_model.safetensors.index.json", "adapter.safetensors",
             "text_tokenizer/spiece.model", "text_tokenizer/added_tokens.json", "embodiment.json", "README.md",
             "assets/demo.gif", "LICENSE", "eval_results.json", "text_encoder/config.json"]
    hub = FakeHub(monkeypatch, files=older)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--revision", "v2"]) == 0
    stale, kept = sorted(older[:6]), sorted(older[6:])
    assert hub.deleted == stale and [op.path_in_repo for op in hub.commits[-1]["operations"]
                                     if isinstance(op, CommitOperationDelete)] == stale  # in the push's one commit
    assert len(hub.commits) == 1 and hub.record == sorted(hub.uploaded)
    assert hub.remote == sorted([".gitattributes", PUSH_RECORD, *kept, *hub.uploaded])
    out = capsys.readouterr().out
    assert (f"removed 6 files there that this push does not send ({stale!r}): what an earlier push or upload left "
            f"that {checkpoint} does not have; the hub's history keeps them") in out
    assert ("kept 5 files there that this push does not send and no loader reads as part of a diffusers checkpoint "
            f"(a card, its figures, a license: added on the hub's page): {kept!r}; "
            "to remove them: `hf repos delete-files me/tiny --revision v2 FILE...`") in out

    root = tmp_path / "ds"
    for name in ("meta/info.json", "data/chunk-000/file-000.parquet"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    hub = FakeHub(monkeypatch, files=["data/chunk-000/file-001.parquet", "videos/cam/chunk-000/file-001.mp4",
                                      "README.md"])  # no record: an older dataset's episodes, and its card
    pushed = push(root, "me/ds")
    assert pushed.removed == hub.deleted == ["data/chunk-000/file-001.parquet", "videos/cam/chunk-000/file-001.mp4"]
    assert pushed.kept == ["README.md"]
    hub.edit("figure.png")  # on the hub's page, after that push
    (root / "data" / "chunk-000" / "file-000.parquet").unlink()  # gone here: the push's own file, removed
    pushed = push(root, "me/ds")
    assert pushed.removed == hub.deleted == ["data/chunk-000/file-000.parquet"]
    assert pushed.kept == ["README.md", "figure.png"] and "figure.png" in hub.remote


def test_stale_files_keep_every_hidden_file_and_what_is_sent():
    """Hidden files, at the top or in a folder (the hub's .gitattributes, a repository's .github/, the push's record),
    are never sent (`PUSH_IGNORE`), so never removed nor listed either; a name sent is never removed, whatever folder
    it is in; of the rest, what a loader reads as part of the repository's kind and what the previous push sent are
    removed, the others kept. A model's JSON file is read where it is one a loader reads at the top (embodiment.json,
    config.json) or lies in a folder the push sends into (a part of the checkpoint: b/) or whose weights go (an older
    checkpoint's part: s/); the user's own (results.json at the top, one in a folder no part of a checkpoint) is kept
    unless the previous push sent it."""
    remote = [".gitattributes", ".github/workflows/x.yml", "meta/.keep", "data/.cache/x", "a.json", "b/c.json",
              "b/d.json", "b/w.safetensors", "e.png", "notes.md", "meta/tasks.parquet", PUSH_RECORD, "embodiment.json",
              "config.json", "results.json", "eval/scores.json"]
    sent = ["a.json", "b/c.json"]
    assert stale_files(remote, sent, ["a.json", "notes.md", "results.json"], "model") == (
        ["b/d.json", "b/w.safetensors", "config.json", "embodiment.json", "notes.md", "results.json"],
        ["e.png", "eval/scores.json", "meta/tasks.parquet"])
    assert stale_files(remote, sent, None, "model") == (
        ["b/d.json", "b/w.safetensors", "config.json", "embodiment.json"],
        ["e.png", "eval/scores.json", "meta/tasks.parquet", "notes.md", "results.json"])
    # a dataset's loader reads meta/, data/ and videos/: a JSON file at the top is no part of it
    assert stale_files(remote, sent, None, "dataset") == (
        ["meta/tasks.parquet"], ["b/d.json", "b/w.safetensors", "config.json", "e.png", "embodiment.json",
                                 "eval/scores.json", "notes.md", "results.json"])
    # an older checkpoint's part this one lacks (s/): its config goes with its weights, though nothing is sent there;
    # the user's folder of JSON alone stays
    older_part = [*remote, "s/config.json", "s/diffusion_pytorch_model.safetensors"]
    assert stale_files(older_part, sent, None, "model") == (
        ["b/d.json", "b/w.safetensors", "config.json", "embodiment.json", "s/config.json",
         "s/diffusion_pytorch_model.safetensors"], ["e.png", "eval/scores.json", "meta/tasks.parquet", "notes.md",
                                                     "results.json"])


def test_a_dry_run_lists_what_a_push_would_do_and_changes_nothing(checkpoint, token, monkeypatch, capsys):
    """`push --dry-run`: the repository read (no repository or branch made, nothing committed), every file listed by
    what a push would do with it; a repository not there yet holds nothing to remove; `--private` over a public one
    refused as the push refuses it."""
    (checkpoint / "optimizer.safetensors").write_bytes(b"o")
    hub = FakeHub(monkeypatch, files=["vae/old.safetensors", "README.md"], private=False)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--revision", "v2", "--dry-run"]) == 0
    assert "create_commit" not in hub.names() and "create_repo" not in hub.names()
    assert "create_branch" not in hub.names() and hub.remote == [".gitattributes", "README.md", "vae/old.safetensors"]
    out = capsys.readouterr().out.splitlines()
    files = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(checkpoint).parts)
                   and p.name != "optimizer.safetensors")
    assert out[0] == (f"dry run, nothing sent: a push would send {len(files)} of the {len(files)} files of a diffusers "
                      f"checkpoint {checkpoint} ({sum((checkpoint / f).stat().st_size for f in files) / 1e6:.1f} MB) "
                      "to branch v2 of the model repository me/tiny, leave 0 there as they are, remove 1 files there "
                      "and keep 1")
    assert out[1:] == [f"send ({len(files)}: new, or changed from the repository's):", *(f"  {name}" for name in files),
                       f"remove (1: what an earlier push or upload left that {checkpoint} does not have):",
                       "  vae/old.safetensors",
                       "keep (1: no loader reads them as part of it: a card, its figures, a license):", "  README.md",
                       "leave out (1: the training state, which only a resume reads: --with-training-state sends it):",
                       "  optimizer.safetensors"]
    hub = FakeHub(monkeypatch)  # no repository yet
    pushed = push(checkpoint, "me/new", dry_run=True, private=True)
    assert pushed.dry_run and pushed.url is None and pushed.removed == pushed.kept == [] and pushed.commits == 1
    assert hub.names() == ["repo_info"] and hub.private is None
    FakeHub(monkeypatch, private=False)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--private", "--dry-run"]) == 2
    assert "already exists and is public" in capsys.readouterr().err


def test_a_push_sends_only_what_the_repository_lacks(checkpoint, token, monkeypatch, capsys):
    """A checkpoint pushed over its older self re-sent every file, gigabytes of unchanged weights among them, and
    `--dry-run` listed them all as sent. Each file the branch holds is compared by content (an LFS file by its sha256,
    another by its git blob id), not by size alone: a changed file of the same size is sent, an unchanged one is
    neither sent nor in any commit. A push that would change nothing makes no commit and says so."""
    hub = FakeHub(monkeypatch)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0
    files = list(hub.uploaded)
    weights, config = "transformer/diffusion_pytorch_model.safetensors", "transformer/config.json"
    for name in (weights, config):  # the same size, other bytes: an LFS file and a regular one
        data = (checkpoint / name).read_bytes()
        (checkpoint / name).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (checkpoint / "embodiment.json").write_text("{}")  # new
    changed = sorted([weights, config, "embodiment.json"])
    unchanged = sorted(set(files) - set(changed))
    capsys.readouterr()
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"dry run, nothing sent: a push would send 3 of the {len(files) + 1} files of a diffusers "
                             f"checkpoint {checkpoint} (") and f"leave {len(unchanged)} there as they are" in out[0]
    assert out[1:] == ["send (3: new, or changed from the repository's):", *(f"  {name}" for name in changed),
                       f"unchanged ({len(unchanged)}: the repository holds them byte for byte: not sent):",
                       *(f"  {name}" for name in unchanged)]
    assert len(hub.commits) == 1
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0
    assert hub.uploaded == changed and len(hub.commits) == 2
    assert sorted(op.path_in_repo for op in hub.commits[-1]["operations"]) == sorted([*changed, PUSH_RECORD])
    # the LFS file read to compare is not hashed again as it uploads: huggingface_hub is given its sha256; the others
    # (a new file, one not in LFS) it hashes itself, as it sends them
    hashed = {op.path_in_repo: op.upload_info.sha256 for op in hub.commits[-1]["operations"]
              if op.path_in_repo in changed and op.upload_info.is_hashed}
    assert hashed == {weights: hashlib.sha256((checkpoint / weights).read_bytes()).digest()}
    assert hub.record == sorted([*files, "embodiment.json"])  # the record names every file, sent or held
    assert (f"pushed a diffusers checkpoint {checkpoint} (3 files, " in (said := capsys.readouterr().out)
            and f"; the repository held the other {len(unchanged)} as they are: not sent) to the model repository "
            "me/tiny" in said)
    asked = hub.names().count("create_commit")
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0
    assert hub.names().count("create_commit") == asked and len(hub.commits) == 2
    assert capsys.readouterr().out.startswith(
        f"nothing to push: the model repository me/tiny holds a diffusers checkpoint {checkpoint} as it is "
        f"({len(files) + 1} files), at https://huggingface.co/me/tiny/commit/c2")
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        ("dry run, nothing sent: a push would change nothing, the model repository me/tiny holding a diffusers "
         f"checkpoint {checkpoint} as it is ({len(files) + 1} files)"),
        f"unchanged ({len(files) + 1}: the repository holds them byte for byte: not sent):"]
    (checkpoint / "embodiment.json").unlink()  # a removal alone is a commit: the file goes, and the record
    pushed = push(checkpoint, "me/tiny")
    assert pushed.commits == 1 and pushed.sent == hub.uploaded == [] and hub.deleted == ["embodiment.json"]
    assert hub.record == files


def test_content_digest_is_the_hubs_name_for_the_content(tmp_path):
    """A file not in LFS is named on the hub by its git blob id, as `git hash-object` gives it; an LFS file by its
    content's sha256. A file is read in chunks (one past the chunk size here) and gives what its bytes give."""
    from worldpolicy.hub import content_digest

    for name, data in (("empty", b""), ("config.json", b'{"a": 1}\n'), ("big.bin", os.urandom((1 << 18) + 7))):
        (tmp_path / name).write_bytes(data)
        git = subprocess.run(["git", "hash-object", "--no-filters", str(tmp_path / name)], capture_output=True,
                             text=True, check=True).stdout.strip()
        assert content_digest(tmp_path / name, git_blob=True) == content_digest(data, git_blob=True) == git
        assert content_digest(tmp_path / name, git_blob=False) == content_digest(data, git_blob=False) == \
            hashlib.sha256(data).hexdigest()


def test_a_dry_run_reads_a_public_repository_without_a_token(checkpoint, monkeypatch, capsys):
    """`--dry-run` only reads, as anyone may read a public repository: no token is asked, and the listing says a
    private repository would read as not there yet. A push still needs one."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(checkpoint.parent / "hf_home"))  # no stored login there
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(checkpoint.parent / "hf_home" / "token"))
    hub = FakeHub(monkeypatch, files=["vae/old.safetensors"], private=False)
    tokens = []
    monkeypatch.setattr(HfApi, "repo_info", lambda api, *a, _read=HfApi.repo_info, **k: tokens.append(api.token)
                        or _read(api, *a, **k))
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("read without a token (HF_TOKEN or `hf auth login`), as anyone may: a private repository reads "
                      "as not there yet, and a push needs a token with write access")
    assert "remove (1: what an earlier push or upload left" in "\n".join(out) and tokens == [None]
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 2
    assert "no Hugging Face token" in capsys.readouterr().err and "create_commit" not in hub.names()


def test_an_anonymous_dry_run_of_a_gated_repository_asks_for_a_login_not_another_token(checkpoint, monkeypatch,
                                                                                        capsys):
    """A gated repository's files (the push's record) are read only by an account given access: a dry run without a
    token, answered 401, said the token sent was not valid, though none was sent. It names the gate and the login;
    with a token, the account that needs access."""
    from huggingface_hub.errors import GatedRepoError

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(checkpoint.parent / "hf_home"))  # no stored login there
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(checkpoint.parent / "hf_home" / "token"))
    FakeHub(monkeypatch, files=["vae/old.safetensors"], private=False, recorded=True)

    def gated(status):
        def download(api, *args, **kwargs):
            raise _refused(status, "Cannot access gated repo for url https://huggingface.co/me/tiny.", GatedRepoError)
        return download

    monkeypatch.setattr(HfApi, "hf_hub_download", gated(401))
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("nothing was changed here, it is a gated repository, whose files only an account given "
                        "access reads (accept its terms on https://huggingface.co/me/tiny): log in (HF_TOKEN or "
                        "`hf auth login`)") and "not valid" not in err
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(HfApi, "hf_hub_download", gated(403))
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "log in with such an account's token (HF_TOKEN or `hf auth login`)")
    monkeypatch.delenv("HF_TOKEN")  # any other 401 without a token: one is needed, not another
    monkeypatch.setattr(HfApi, "hf_hub_download", lambda api, *a, **k: (_ for _ in ()).throw(
        _refused(401, "Unauthorized")))
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "the hub reads it only with a token, and none was sent: log in (HF_TOKEN or `hf auth login`)")


def test_the_hubs_pages_are_named_on_the_hub_huggingface_hub_talks_to(checkpoint, token, monkeypatch):
    """`HF_ENDPOINT` (a mirror, a private hub): the commit URL of a push that changed nothing and the pages its
    messages name were huggingface.co's, though huggingface_hub sent every request (and named each commit) there."""
    hub = FakeHub(monkeypatch)
    push(checkpoint, "me/tiny")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://hub.example.org")
    assert push(checkpoint, "me/tiny").url == f"https://hub.example.org/me/tiny/commit/{hub.head}"
    FakeHub(monkeypatch, private=False)
    with pytest.raises(ValueError, match=r"https://hub\.example\.org/datasets/me/ds/settings"):
        push(_seven_file_dataset(checkpoint.parent)[0], "me/ds", private=True)


def test_huggingface_hub_skips_a_commit_of_files_the_branch_holds_unpinned_as_push_reads_it(monkeypatch):
    """What `hub._skipped` and `hub.BranchMoved` rest on, in the installed huggingface_hub's own create_commit: a
    commit whose every file the branch holds (the hub answering with its oid) is sent nowhere, whatever its
    `parent_commit`, and answered with the branch's head; its additions are not marked committed. A changed file is
    sent, pinned, and marks them."""
    import huggingface_hub._commit_api
    from huggingface_hub import CommitOperationAdd

    from worldpolicy.hub import _skipped

    held = b"{}"

    def preupload(api, repo_id, additions, **kwargs):  # the hub's answer: LFS files, the ones it holds by their oid
        for op in additions:
            op._upload_mode = "lfs"
            op._remote_oid = op.upload_info.sha256.hex() if _bytes(op) == held else None

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(HfApi, "preupload_lfs_files", preupload)
    monkeypatch.setattr(HfApi, "repo_info", lambda *a, **k: SimpleNamespace(sha="b" * 40))
    monkeypatch.setattr(huggingface_hub._commit_api, "_send_commit",
                        lambda **kwargs: sent.append(kwargs) or SimpleNamespace(oid="c" * 40))
    for data, skipped, oid in ((held, True, "b" * 40), (b"[]", False, "c" * 40)):
        operations = [CommitOperationAdd("a.json", data)]
        answer = HfApi(token="hf_test").create_commit("me/x", operations, commit_message="m", parent_commit="a" * 40)
        assert answer.oid == oid and _skipped(operations) is skipped
    assert len(sent) == 1 and sent[0]["parent_commit"] == "a" * 40


def test_a_push_over_a_branch_that_moved_is_refused_though_its_commit_changed_nothing(tmp_path, token, monkeypatch,
                                                                                     capsys):
    """huggingface_hub skips a commit whose files the branch holds already before the hub sees its pin
    (`parent_commit`), answering with the branch's head: a push whose files another push landed after the branch was
    listed went on from that head, its later commits onto the change. A skipped commit answered with another head
    than its pin is refused as the hub's 412 is; a rerun, pinned to the new head, sends only what that lacks, and a
    push that changes nothing makes no commit and says so."""
    import worldpolicy.hub

    monkeypatch.setattr(worldpolicy.hub, "PUSH_COMMIT_FILES", 3)
    root, _ = _seven_file_dataset(tmp_path)
    hub = FakeHub(monkeypatch)
    push(root, "me/ds")
    assert len(hub.commits) == 3
    changed = [f"data/chunk-000/file-{i:03d}.parquet" for i in range(4)]  # re-made: four files, in two commits
    for name in changed:
        (root / name).write_text(f"v2 {name}")

    def other_push() -> None:  # the same files of the first commit, landed as this push listed the branch
        if hub.head == "c3":
            for name in changed[:3]:
                hub.edit(name, f"v2 {name}".encode())

    hub.before_commit = other_push
    with pytest.raises(HubError, match=r"\(BranchMoved: the branch is at c4-web, not at c3, the commit this push "
                       r"went onto\); nothing was changed here, the repository changed on the hub while this push ran"):
        push(root, "me/ds")
    assert len(hub.commits) == 3 and hub.skipped == 1 and hub.contents[changed[3]] == changed[3].encode()
    hub.before_commit = lambda: None
    pushed = push(root, "me/ds")  # pinned to the moved head now: what it lacks goes onto the change
    assert pushed.commits == 1 and pushed.sent == hub.uploaded == changed[3:]
    assert hub.commits[-1]["parent_commit"] == "c4-web" and hub.contents[changed[3]] == f"v2 {changed[3]}".encode()
    capsys.readouterr()
    asked = hub.names().count("create_commit")
    assert main(["push", str(root), "--repo-id", "me/ds"]) == 0  # nothing to change: no commit at all, none asked
    assert len(hub.commits) == 4 and hub.names().count("create_commit") == asked
    assert capsys.readouterr().out.startswith(
        f"nothing to push: the dataset repository me/ds holds a LeRobot dataset {root} as it is (7 files), at "
        "https://huggingface.co/datasets/me/ds/commit/c4")


def test_a_push_the_hub_changed_under_is_refused_not_overwritten(checkpoint, token, monkeypatch, capsys):
    """The files were listed, then committed without a pin: an edit on the hub's page in between (its README.md, a
    file the next commit sends too) was silently overwritten. Each commit is pinned to the commit it follows
    (`parent_commit`): the hub refuses it (412), and the line says so and where to see what changed."""
    hub = FakeHub(monkeypatch)
    hub.before_commit = lambda: hub.edit("README.md")
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 2
    assert hub.contents["README.md"] == b"web" and hub.commits == []
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"worldpolicy push: error: could not push {str(checkpoint)!r} to the hub's model repository 'me/tiny' "
        "(HfHubHTTPError: 412 Client Error: A commit has happened since. Please refresh and try again.); nothing "
        "was changed here, the repository changed on the hub while this push ran (an edit on its page, another "
        "push), and nothing of it was overwritten: see what changed "
        "(https://huggingface.co/me/tiny/commits/main), then run again to push over it")


def _seven_file_dataset(tmp_path: Path) -> tuple[Path, list[str]]:
    """A dataset folder of meta/info.json and six data files, each holding its own name; with their names."""
    root = tmp_path / "ds"
    names = ["meta/info.json", *(f"data/chunk-000/file-{i:03d}.parquet" for i in range(6))]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root, names


def test_a_large_push_goes_in_commits_each_pinned_to_the_last(tmp_path, token, monkeypatch, capsys):
    """A DROID-sized dataset (thousands of files) went in one commit, which the hub refuses or times out on: past
    `PUSH_COMMIT_FILES` it goes in several, each pinned to the one before, what marks it a dataset (meta/info.json),
    the removals and the record in the last, so a push cut short leaves no repository that reads as the dataset
    whole; one cut short says what landed, and a rerun goes on from there."""
    import worldpolicy.hub

    monkeypatch.setattr(worldpolicy.hub, "PUSH_COMMIT_FILES", 3)
    root, names = _seven_file_dataset(tmp_path)
    hub = FakeHub(monkeypatch, files=["data/chunk-000/file-009.parquet"], recorded=True)
    edits = iter([None, None, "figure.png"])
    hub.before_commit = lambda: (name := next(edits, None)) and hub.edit(name)
    assert main(["push", str(root), "--repo-id", "me/ds", "--message", "v2"]) == 2
    assert [c["parent_commit"] for c in hub.commits] == ["c0", "c1"]
    assert [c["commit_message"] for c in hub.commits] == ["v2 (part 1/3)", "v2 (part 2/3)"]
    assert "meta/info.json" not in hub.sent and "data/chunk-000/file-009.parquet" in hub.remote
    err = capsys.readouterr().err
    assert "(7 files, 0.0 MB) to the dataset repository me/ds\nsending 7 of them (0.0 MB), in 3 commits\n" in err
    assert ("committed part 2/3 (3 files): https://huggingface.co/datasets/me/ds/commit/c2" in err)
    assert ("; 2 of its 3 commits landed (6 files; a run again sends only what they lack), the last "
            "https://huggingface.co/datasets/me/ds/commit/c2; nothing was changed here, the repository changed") in err
    hub.before_commit = lambda: None
    pushed = push(root, "me/ds", message="v2")
    # what the parts that landed sent is not sent again (the branch holds it): the rest goes in one commit
    assert pushed.commits == 1 and hub.skipped == 0 and hub.commits[-1]["commit_message"] == "v2"
    assert pushed.sent == ["meta/info.json"] and pushed.unchanged == names[1:]
    last = [op.path_in_repo for op in hub.commits[-1]["operations"]]
    assert last == ["meta/info.json", "data/chunk-000/file-009.parquet", PUSH_RECORD]
    assert hub.record == sorted(names) and pushed.kept == ["figure.png"]
    assert pushed.url == "https://huggingface.co/datasets/me/ds/commit/c3"


def test_a_push_cut_short_records_what_it_landed_for_the_next_push_to_remove(tmp_path, token, monkeypatch):
    """The record was written in a large push's last commit only: one cut short left the files its first commits
    landed in no record, so the next push, of a dataset re-made with fewer episodes, kept them (said as added on the
    hub's page) and LeRobot read them as its own. Its first commit records them beside the previous push's files."""
    import worldpolicy.hub

    monkeypatch.setattr(worldpolicy.hub, "PUSH_COMMIT_FILES", 3)
    root, names = _seven_file_dataset(tmp_path)
    hub = FakeHub(monkeypatch, files=["data/chunk-000/file-009.parquet"], recorded=True)
    edits = iter([None, "figure.png"])  # an edit on the hub's page before the second commit: refused (412)
    hub.before_commit = lambda: (name := next(edits, None)) and hub.edit(name)
    with pytest.raises(HubError, match="1 of its 3 commits landed"):
        push(root, "me/ds")
    assert hub.record == sorted(["data/chunk-000/file-009.parquet", *names])
    for i in range(1, 6):  # re-made with one episode's file
        (root / f"data/chunk-000/file-{i:03d}.parquet").unlink()
    pushed = push(root, "me/ds")
    assert pushed.removed == hub.deleted == ["data/chunk-000/file-001.parquet", "data/chunk-000/file-002.parquet",
                                             "data/chunk-000/file-009.parquet"]
    assert pushed.kept == ["figure.png"] and hub.record == pushed.files
    assert hub.remote == sorted([".gitattributes", PUSH_RECORD, "figure.png", *pushed.files])


def test_push_private_to_an_existing_public_repository_is_refused_before_sending(checkpoint, token, monkeypatch,
                                                                                  capsys):
    """The hub keeps an existing repository's visibility (`create_repo(private=True, exist_ok=True)` changes
    nothing): `--private` would have published to a public one. A private one, or no `--private`, goes."""
    hub = FakeHub(monkeypatch, private=False)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--private"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (  # after what it would have sent
        "worldpolicy push: error: --private: the model repository 'me/tiny' already exists and is public, so what is "
        "pushed would be public; nothing was sent. Make it private first (`hf repos settings me/tiny --private`, or "
        "https://huggingface.co/me/tiny/settings), or leave --private out to push it public")
    assert "create_commit" not in hub.names() and hub.uploaded == []
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny"]) == 0 and hub.uploaded
    hub = FakeHub(monkeypatch, private=True)
    assert main(["push", str(checkpoint), "--repo-id", "me/tiny", "--private"]) == 0 and hub.uploaded


def test_push_shows_a_datasets_provenance_without_local_paths(tmp_path, token, monkeypatch):
    """meta/worldpolicy_provenance.json goes with every path it records as the card shows it (a hub id, else the
    folder's or file's own name), the rest of the record as it is; the local file, which `--overwrite` and a
    recording's seeds are read from, is untouched. A dataset written before that file keeps its record in info.json:
    sent alike, the rest of info.json as it is."""
    root = tmp_path / "ds"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text('{"codebase_version": "v3.0"}')
    home = tmp_path / "home" / "alice"
    record = {"source": "worldpolicy dataset from-sim", "task": "lift", "seeds": [3, 4],
              "policy": str(tmp_path / "hf" / "models--nvidia--pick" / "snapshots" / COMMIT),
              "policy_settings": {"checkpoint": str(home / "runs" / "pick" / "checkpoints" / "step-0000800"),
                                  "chunk_size": 8},
              "datasets": [{"dataset": str(home / "data" / "day1"), "episodes": 2}, {"dataset": "me/day2"}],
              "command": f"worldpolicy dataset from-sim lift {home / 'data' / 'lift'} --seeds 3 4", "cwd": str(home)}
    local = json.dumps(record, indent=4)
    (root / "meta" / "worldpolicy_provenance.json").write_text(local)
    hub = FakeHub(monkeypatch)
    push(root, "me/ds")
    sent = hub.sent["meta/worldpolicy_provenance.json"].decode()
    assert str(tmp_path) not in sent and (root / "meta" / "worldpolicy_provenance.json").read_text() == local
    assert json.loads(sent) == {**record, "policy": "nvidia/pick",
                                "policy_settings": {"checkpoint": "step-0000800", "chunk_size": 8},
                                "datasets": [{"dataset": "day1", "episodes": 2}, {"dataset": "me/day2"}],
                                "command": "worldpolicy dataset from-sim lift lift --seeds 3 4", "cwd": None}
    assert "alice" not in sent  # the folder the command was typed in: its name is its user's
    assert hub.sent["meta/info.json"] == (root / "meta" / "info.json").read_bytes()

    (root / "meta" / "worldpolicy_provenance.json").unlink()  # an older dataset: the record in info.json
    info = {"codebase_version": "v3.0", "fps": 10, "worldpolicy_provenance": {"file": str(home / "lift.hdf5")}}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    push(root, "me/ds")
    assert json.loads(hub.sent["meta/info.json"]) == {**info, "worldpolicy_provenance": {"file": "lift.hdf5"}}
    assert json.loads((root / "meta" / "info.json").read_text()) == info


def test_push_adapter_checkpoint_is_a_model(tmp_path, token, monkeypatch):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "base_model.json").write_text("{}")
    hub = FakeHub(monkeypatch)
    assert push(folder, "me/adapter").what == "a LoRA adapter checkpoint"
    assert hub.calls[0][1]["repo_type"] == "model"


@pytest.mark.parametrize(("make", "said"), [
    (lambda p: (p / "report.json").write_text("{}"), ("holds a sim run (report.json), which is not shared on the hub; "
                                                      "push takes a diffusers checkpoint, a LoRA adapter checkpoint or "
                                                      "a LeRobot dataset")),
    (lambda p: None, "is empty; push takes"),
    (lambda p: (p / "notes.txt").write_text("x"), "holds nothing worldpolicy made that can be shared"),
])
def test_push_refuses_what_is_not_shared(tmp_path, token, monkeypatch, capsys, make, said):
    folder = tmp_path / "thing"
    folder.mkdir()
    make(folder)
    hub = FakeHub(monkeypatch)
    assert main(["push", str(folder), "--repo-id", "me/x"]) == 2
    assert f"error: PATH: {str(folder)!r} {said}" in capsys.readouterr().err
    assert hub.calls == []


def test_push_of_a_part_of_a_checkpoint_names_the_checkpoint(checkpoint, token, monkeypatch, capsys):
    hub = FakeHub(monkeypatch)
    assert main(["push", str(checkpoint / "transformer"), "--repo-id", "me/x"]) == 2
    assert (f"PATH: {str(checkpoint / 'transformer')!r} is a part of {str(checkpoint)!r}, which holds a diffusers "
            "checkpoint (model_index.json): push that folder") in capsys.readouterr().err
    assert hub.calls == []


def test_push_of_a_training_run_names_its_newest_checkpoint(tmp_path, token, monkeypatch, capsys):
    run = tmp_path / "run"
    for step in ("step-0000002", "step-0000004"):
        (run / "checkpoints" / step).mkdir(parents=True)
        (run / "checkpoints" / step / "model_index.json").write_text("{}")
        (run / "checkpoints" / step / "trainer_state.json").write_text("{}")
    (run / "metrics.jsonl").write_text("")
    hub = FakeHub(monkeypatch)
    assert main(["push", str(run), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "holds a training run (metrics.jsonl)" in err
    assert f"the newest, {str(run / 'checkpoints' / 'step-0000004')!r}" in err
    assert hub.calls == []


def test_push_refuses_a_bad_repo_id_and_no_token_before_sending(checkpoint, monkeypatch, capsys):
    hub = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert main(["push", str(checkpoint), "--repo-id", "me/two/parts"]) == 2
    assert "error: --repo-id='me/two/parts': expected OWNER/NAME" in capsys.readouterr().err
    assert main(["push", str(checkpoint), "--repo-id", "pick"]) == 2  # no owner: not read back as a hub id
    assert "error: --repo-id='pick': expected OWNER/NAME" in capsys.readouterr().err
    assert main(["push", str(checkpoint), "--repo-id", "me/r 2"]) == 2
    assert "error: --repo-id='me/r 2': Repo id must use alphanumeric chars" in capsys.readouterr().err
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(checkpoint.parent / "hf_home"))  # no stored login there
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(checkpoint.parent / "hf_home" / "token"))
    assert main(["push", str(checkpoint), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "HF_TOKEN" in err and "`hf auth login`" in err
    assert hub.calls == []


def test_push_refuses_offline_mode_before_sending(checkpoint, token, monkeypatch, capsys):
    """HF_HUB_OFFLINE=1 would refuse every request: said as the setting to change, not as a hub to wait for."""
    hub = FakeHub(monkeypatch)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read from the environment at import
    assert main(["push", str(checkpoint), "--repo-id", "me/x"]) == 2
    captured = capsys.readouterr()
    assert "error: HF_HUB_OFFLINE is set" in captured.err and "unset it" in captured.err
    assert "pushing" not in captured.out + captured.err and hub.calls == []


def test_push_names_transformers_offline_when_that_is_what_is_set(checkpoint, token, monkeypatch, capsys):
    """huggingface_hub reads TRANSFORMERS_OFFLINE where HF_HUB_OFFLINE is not set: the error named HF_HUB_OFFLINE,
    which the user had not set."""
    hub = FakeHub(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read from the environment at import
    assert main(["push", str(checkpoint), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "error: TRANSFORMERS_OFFLINE is set" in err and "set TRANSFORMERS_OFFLINE=0" in err, err
    assert hub.calls == []


@pytest.mark.parametrize("held_by", ["folder_lock", "dataset_lock"])
def test_push_refuses_a_folder_a_running_command_holds(tmp_path, token, monkeypatch, capsys, held_by):
    """A run folder's lock file is inside it; a dataset's is beside it (a dataset command, `dataset label` into
    --out, replaces the folder whole once done), and names the command."""
    root = tmp_path / "ds"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text("{}")
    hub = FakeHub(monkeypatch)
    held = folder_lock(root, "--out") if held_by == "folder_lock" else dataset_lock(root, "--out", "`dataset label`")
    with held as lock:
        assert main(["push", str(root), "--repo-id", "me/x"]) == 2
    command = ", `dataset label`" if held_by == "dataset_lock" else ""
    assert (f"PATH: {str(root)!r} is in use by a running worldpolicy process (PID {os.getpid()}{command}, in its lock "
            f"file {str(lock)!r})") in capsys.readouterr().err
    assert hub.calls == []
    assert push(root, "me/x").files == ["meta/info.json"]  # let go: pushed


def test_push_refuses_a_checkpoint_of_a_run_still_training(tmp_path, token, monkeypatch, capsys):
    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / "step-0000002"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model_index.json").write_text("{}")
    hub = FakeHub(monkeypatch)
    with folder_lock(run, "--out / output_dir"):  # as the trainer holds its run folder
        assert main(["push", str(checkpoint), "--repo-id", "me/x"]) == 2
    assert f"PATH: {str(checkpoint)!r} is inside {str(run)!r}, which is in use by a running worldpolicy process" \
        in capsys.readouterr().err
    assert hub.calls == []


def test_push_network_failure_is_one_line_after_what_it_would_have_sent(checkpoint, token, monkeypatch, capsys):
    """What goes and what stays is said before the upload (which may take long, or fail: the user learnt what was left
    out only from a push that succeeded), then the failure, one line."""
    import httpx2

    (checkpoint / "optimizer.safetensors").write_bytes(b"o" * 3000)
    before = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*"))
    FakeHub(monkeypatch, fail=httpx2.ConnectError("[Errno -2] Name or service not known"))
    assert issubclass(httpx2.ConnectError, HTTPError)  # what huggingface_hub raises offline, caught as its HTTPError
    assert main(["push", str(checkpoint), "--repo-id", "me/x"]) == 2
    said, err = capsys.readouterr().err.strip().split("\n")
    sent = shared_files(checkpoint, ["optimizer.safetensors"])
    assert said.startswith(f"pushing a diffusers checkpoint {checkpoint} ({len(sent)} files, ")
    assert said.endswith(" MB) to the model repository me/x; its training state, which only a resume reads, stays "
                         "here (optimizer.safetensors, 0.0 MB)")
    assert err == (f"worldpolicy push: error: could not push {str(checkpoint)!r} to the hub's model repository 'me/x' "
                   "(ConnectError: [Errno -2] Name or service not known); nothing was changed here, run again once the "
                   "hub can be reached")
    assert sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*")) == before
    with pytest.raises(HubError):
        push(checkpoint, "me/x")


@pytest.mark.parametrize(("status", "fix"), [
    (401, BAD_TOKEN),
    (403, ("this token may not write to 'nvidia''s repositories: log in with one that has write access there "
           "(HF_TOKEN or `hf auth login`), or push to a repository of your own")),
    (409, "the hub refused it: fix what it says and run again"),
    (503, "run again once the hub can be reached"),
])
def test_a_push_the_hub_refuses_names_the_fix(checkpoint, token, monkeypatch, capsys, status, fix):
    """A read-only token, or an owner it may not write to, was "run again once the hub can be reached": no rerun
    helps."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    FakeHub(monkeypatch, fail=HfHubHTTPError(f"{status} Client Error: the hub's reason",
                                             response=httpx2.Response(status, request=request)))
    assert main(["push", str(checkpoint), "--repo-id", "nvidia/x"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"worldpolicy push: error: could not push {str(checkpoint)!r} to the hub's model repository 'nvidia/x' "
        f"(HfHubHTTPError: {status} Client Error: the hub's reason); nothing was changed here, {fix}")


@pytest.mark.parametrize(("source", "shaped"), [
    ("lerobot/pusht", True), ("nvidia/Cosmos3-Nano-Policy-DROID", True), ("./a/b", False), ("/a/b", False),
    ("~/a", False), ("a", False), ("a/b/c", False),
])
def test_hub_id_shape(source, shaped):
    assert hub_id_shaped(source) is shaped


def test_a_malformed_revision_is_refused_with_the_repository_given_as_the_example():
    """A checkpoint's refusal gave a dataset (lerobot/pusht@main) as its example: the repository typed is one."""
    from worldpolicy.hub import check_hub_id

    with pytest.raises(ValueError, match=r"^checkpoint='me/pick@ ': .* \(e\.g\. 'me/pick@main'\), or OWNER/NAME alone"):
        check_hub_id("me/pick@ ", "checkpoint")


def test_push_needs_no_heavy_imports():
    """`worldpolicy push` is a file upload: torch and diffusers stay unloaded."""
    code = ("import sys; from worldpolicy.cli import build_parser; import worldpolicy.hub, worldpolicy.commands; "
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def hub_cache(tiny_checkpoint, tmp_path, monkeypatch) -> Path:
    """The hub's cache, offline (`HF_HUB_OFFLINE=1`), holding the model repository `me/pick` as huggingface_hub lays
    it out: the tiny checkpoint trained (its trainer_state.json says) for droid/relative_pose, not the default droid
    joint_pos. huggingface_hub's own snapshot_download finds it there; no network is used."""
    from worldpolicy.hub import model_metadata, model_snapshot

    cache = tmp_path / "cache"
    snapshot = cache / "models--me--pick" / "snapshots" / COMMIT
    shutil.copytree(tiny_checkpoint, snapshot)
    (snapshot / "trainer_state.json").write_text('{"step": 10, "config": {"embodiment": "droid/relative_pose"}}')
    (cache / "models--me--pick" / "refs").mkdir()
    (cache / "models--me--pick" / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)  # no folder `me` here: `me/pick` is a hub id
    model_metadata.cache_clear()
    model_snapshot.cache_clear()
    yield snapshot
    model_metadata.cache_clear()
    model_snapshot.cache_clear()


def test_a_checkpoint_named_from_home_is_found_where_every_other_name_is(tmp_path, monkeypatch):
    """`~/ck` is expanded by `resolve_checkpoint` itself, the one place a user's checkpoint is found: each caller
    combined it with a separate expansion by hand, and one that did not read no folder (`sim.policies.policy_kind`
    refused `~/ck` as missing). Never fetched: a hub id never starts with `~`."""
    from worldpolicy.models import portable_checkpoint, resolve_checkpoint
    from worldpolicy.sim.policies import policy_kind

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ck").mkdir()
    for fetch in (True, False):
        assert resolve_checkpoint("~/ck", fetch=fetch) == str(tmp_path / "ck")
        assert resolve_checkpoint(Path("~/ck"), fetch=fetch) == tmp_path / "ck"  # a Path stays one
    assert resolve_checkpoint("~/gone") == str(tmp_path / "gone")  # a missing folder, not a hub id to fetch
    assert policy_kind("~/ck") == "checkpoint"
    assert portable_checkpoint("~/ck") == "~/ck"  # a saved setting keeps what the user gave


def test_a_checkpoint_by_hub_id_runs_with_its_own_embodiment(hub_cache, capsys):
    import worldpolicy
    from worldpolicy.models import checkpoint_name, portable_checkpoint, resolve_checkpoint
    from worldpolicy.policy import Policy

    assert resolve_checkpoint("me/pick") == str(hub_cache)
    # what saved settings and records name, and a server announces: the hub id and the commit read, which a rerun
    # from them loads again (the hub id alone loads whatever main holds by then)
    assert portable_checkpoint(str(hub_cache)) == checkpoint_name(str(hub_cache)) == f"me/pick@{COMMIT}"
    assert resolve_checkpoint(f"me/pick@{COMMIT}") == str(hub_cache)
    assert checkpoint_name("me/pick@v2") == "me/pick@v2"  # a hub id given, with the revision asked
    from worldpolicy.viz.plots import checkpoint_name as heading

    assert heading(f"me/pick@{COMMIT}") == "pick@0123abc"  # a figure's heading: the commit as git shortens it
    assert Policy.check_pretrained("me/pick")[0].key == "droid/relative_pose"
    policy = worldpolicy.load_policy("me/pick", chunk_size=16, resolution_tier=256)
    assert policy.embodiment.key == "droid/relative_pose"
    assert main(["embodiments", "--checkpoint", "me/pick", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["name"], row["variant"]) == ("droid", "relative_pose")
    assert "trainer_state.json" in row["source"]
    from PIL import Image

    Image.new("RGB", (64, 64)).save("obs.png")
    # no --state: droid/joint_pos, the default a hub id fell back to, conditions on one; its relative_pose does not
    assert main(["predict", "--checkpoint", "me/pick", "--image", "obs.png", "--prompt",
                 "pick", "--steps", "1", "--no-plots", "--out", "run"]) == 0
    assert json.loads(Path("run/actions.json").read_text())["embodiment"] == "droid/relative_pose"
    # the hub id and its commit, not the cache folder
    assert json.loads(Path("run/settings.json").read_text())["checkpoint"] == f"me/pick@{COMMIT}"


# what `hub.unfetched` says of `me/other` under `hub_cache` (HF_HUB_OFFLINE set, no copy of it in the cache)
OFFLINE_FIX = ("HF_HUB_OFFLINE is set and the hub's cache holds no copy: unset it (or set HF_HUB_OFFLINE=0) to fetch "
               "it, or download it elsewhere (`hf download me/other --local-dir FOLDER`) and give the folder")


def test_a_checkpoint_hub_id_that_cannot_be_fetched_is_one_line(hub_cache, capsys):
    import worldpolicy

    with pytest.raises(HubError, match=r"could not fetch checkpoint 'me/other' from the Hugging Face hub"):
        worldpolicy.load_policy("me/other")
    assert main(["embodiments", "--checkpoint", "me/other"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldpolicy embodiments: error: could not fetch checkpoint 'me/other' from the Hugging Face "
                          "hub (LocalEntryNotFoundError: ")
    assert err.endswith(OFFLINE_FIX), err  # offline: the setting named, not "Offline?"
    assert "\n" not in err


def test_a_hub_id_diffusers_cannot_fetch_names_the_download_to_run(hub_cache, monkeypatch):
    """A checkpoint diffusers fetches itself (an adapter's base by its hub id) says the same `hf download` as one the
    hub's cache fetch refuses."""
    import torch

    from worldpolicy.engine.loading import load_components

    monkeypatch.setattr(logging.getLogger("diffusers"), "handlers", [])  # its "Couldn't connect" warning
    with pytest.raises(FileNotFoundError) as caught:
        load_components("me/other", torch.device("cpu"), torch.float32, checked=True)
    said = str(caught.value)
    assert said.startswith("could not fetch checkpoint 'me/other' from the Hugging Face hub (OSError: ")
    assert said.endswith(OFFLINE_FIX), said


def test_a_checkpoint_by_hub_id_is_checked_on_its_configs_before_its_weights_download(tiny_checkpoint, model_repo,
                                                                                       tmp_path, capsys):
    """Its JSON files first (embodiment, configs: `hub.model_metadata`), every input check, then the weights, at the
    same revision, into the same folder (`hub.complete_snapshot`): a wrong flag fails before gigabytes download."""
    from PIL import Image

    repo = tmp_path / "repo"
    shutil.copytree(tiny_checkpoint, repo)
    (repo / "trainer_state.json").write_text('{"step": 10, "config": {"embodiment": "droid/relative_pose"}}')
    calls, snapshot = model_repo(repo)
    Image.new("RGB", (64, 64)).save("obs.png")
    assert main(["predict", "--checkpoint", "me/pick", "--image", "obs.png", "--prompt", "pick", "--steps", "1",
                 "--chunk-size", "6", "--no-plots", "--out", "run"]) == 2
    assert "--chunk-size" in capsys.readouterr().err
    assert [(call["revision"], call["allow_patterns"]) for call in calls] == [(None, ["*.json", "adapter.safetensors",
                                                                                   "trained.safetensors"])]
    assert (snapshot / "model_index.json").is_file() and (snapshot / "transformer" / "config.json").is_file()
    assert not list(snapshot.rglob("*.safetensors"))  # no weights fetched for a command that was refused
    assert main(["predict", "--checkpoint", "me/pick", "--image", "obs.png", "--prompt", "pick", "--steps", "1",
                 "--no-plots", "--out", "run"]) == 0
    assert [(call["revision"], call["allow_patterns"]) for call in calls[1:]] == [(COMMIT, None)]
    assert list(snapshot.rglob("*.safetensors"))
    assert json.loads(Path("run/settings.json").read_text())["checkpoint"] == f"me/pick@{COMMIT}"


@pytest.mark.parametrize("offline", [True, False])
def test_a_hub_checkpoint_whose_weights_are_not_in_the_cache_names_the_fix(tiny_checkpoint, model_repo, tmp_path,
                                                                            monkeypatch, capsys, offline):
    """A run refused by a flag fetched only the configs; offline, the next run finds no weights and
    `snapshot_download` returns the folder as the cache holds it. That was "--checkpoint='<the cache's snapshot
    folder>' is incomplete ... a partial download or copy": neither the id typed nor why (HF_HUB_OFFLINE). Online the
    whole revision was fetched, so the repository itself lacks them."""
    from PIL import Image

    repo = tmp_path / "repo"
    shutil.copytree(tiny_checkpoint, repo)
    (repo / "vae" / "diffusion_pytorch_model.safetensors").unlink()  # online: pushed so; offline: never fetched
    _, snapshot = model_repo(repo)
    Image.new("RGB", (64, 64)).save("obs.png")
    args = ["predict", "--checkpoint", "me/pick", "--image", "obs.png", "--prompt", "pick", "--steps", "1",
            "--no-plots", "--out", "run"]
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", offline)  # read from the environment at import
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldpolicy predict: error: --checkpoint='me/pick' is incomplete: "
                          "vae/diffusion_pytorch_model.safetensors is missing"), err
    assert str(snapshot) not in err and "partial download" not in err
    if offline:
        assert err.endswith("HF_HUB_OFFLINE is set, so what the hub's cache lacks of 'me/pick' (an earlier run may "
                            "have fetched only its configs) is not fetched: unset it (or set HF_HUB_OFFLINE=0) to "
                            f"fetch it, or download it elsewhere (`hf download me/pick --revision {COMMIT} --local-dir "
                            "FOLDER`) and give the folder"), err
    else:
        assert err.endswith(f"the hub repository 'me/pick' holds it so at revision {COMMIT} (pushed incomplete?): "
                            "push it again whole, or use another"), err


def test_a_served_checkpoint_by_hub_id_is_fetched_whole_as_the_server_starts(tiny_checkpoint, model_repo, tmp_path):
    """`mcp --checkpoint-dir OWNER/NAME`: its weights download as the server starts, not inside the first tool call
    (`list_checkpoints` checks each folder whole: `check_checkpoint_complete`), where a client would wait on them."""
    from worldpolicy.agents.toolbox import Toolbox, ToolboxConfig

    repo = tmp_path / "repo"
    shutil.copytree(tiny_checkpoint, repo)
    calls, snapshot = model_repo(repo)
    config = ToolboxConfig(checkpoint_dirs=("me/pick",), output_dir=tmp_path / "out")
    assert [call["revision"] for call in calls] == [None, COMMIT] and list(snapshot.rglob("*.safetensors"))
    toolbox = Toolbox(config)
    listed = toolbox.list_checkpoints()["checkpoints"]
    assert len(calls) == 2 and [(row["path"], row["problem"]) for row in listed] == [(str(snapshot), None)]
    # listed by the commit it holds; the hub id as the server was given it names it too
    assert [row["name"] for row in listed] == [f"me/pick@{COMMIT}"]
    assert toolbox.resolve_checkpoint("me/pick") == toolbox.resolve_checkpoint(f"me/pick@{COMMIT}") == snapshot


def test_a_checkpoint_given_as_dot_is_named_by_the_folder_it_is_given_in(tmp_path, monkeypatch):
    """`models.checkpoint_name` was cached by the text alone: `.` (or `../x`) was named by the first folder it was
    asked in, from every other (a test's run after another's, a process that changes directory)."""
    from worldpolicy.models import checkpoint_name

    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        assert checkpoint_name(".") == name


def test_a_pinned_checkpoint_hub_id_reads_its_revision_and_records_its_commit(tiny_checkpoint, model_repo, tmp_path,
                                                                            capsys):
    """`--checkpoint OWNER/NAME@REV` fetches that revision's configs, then its weights at the commit they were read
    from; the checkpoint's identity (`models.checkpoint_files`, what a training run's trainer_state.json and an
    evaluation's report record) names that commit, so the run can be reproduced on the same files. An empty revision
    is refused naming the parameter, before the hub is asked."""
    from worldpolicy.models import checkpoint_files, resolve_checkpoint

    repo = tmp_path / "repo"
    shutil.copytree(tiny_checkpoint, repo)
    calls, snapshot = model_repo(repo)
    assert resolve_checkpoint("me/pick@v2") == str(snapshot)
    assert [(call["repo_id"], call["revision"]) for call in calls] == [("me/pick", "v2")]
    assert checkpoint_files(str(snapshot))["path"] == f"me/pick@{snapshot.name}"
    with pytest.raises(ValueError, match=r"^checkpoint='me/pick@': expected OWNER/NAME@REV"):
        resolve_checkpoint("me/pick@")
    assert main(["embodiments", "--checkpoint", "me/pick@ v2"]) == 2
    assert "checkpoint='me/pick@ v2': expected OWNER/NAME@REV" in capsys.readouterr().err
    assert len(calls) == 1


def test_a_pinned_hub_id_that_cannot_be_fetched_names_the_revision_to_download(hub_cache, monkeypatch, capsys):
    """Offline, a pinned checkpoint missing from the cache names `hf download ... --revision REV`, both where the
    hub's cache is asked (`hub.model_metadata`) and where diffusers fetches it itself (an adapter's base by its hub
    id, at the revision it pins: `engine.loading.load_components`)."""
    import torch

    from worldpolicy.engine.loading import load_components

    fix = "download it elsewhere (`hf download me/other --revision v1 --local-dir FOLDER`) and give the folder"
    assert main(["embodiments", "--checkpoint", "me/other@v1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "could not fetch checkpoint 'me/other@v1' from the Hugging Face hub" in err and err.endswith(fix), err
    monkeypatch.setattr(logging.getLogger("diffusers"), "handlers", [])
    with pytest.raises(FileNotFoundError) as caught:
        load_components("me/other@v1", torch.device("cpu"), torch.float32, checked=True)
    assert str(caught.value).startswith("could not fetch checkpoint 'me/other@v1'") and str(caught.value).endswith(fix)
    asked = []

    def from_pretrained(repo_id, revision=None, **_):
        asked.append((repo_id, revision))
        raise OSError("offline")

    monkeypatch.setattr("diffusers.Cosmos3OmniPipeline.from_pretrained", from_pretrained)
    with pytest.raises(FileNotFoundError):
        load_components("me/other@v1", torch.device("cpu"), torch.float32, checked=True)
    assert asked == [("me/other", "v1")]  # the repository, at the revision pinned

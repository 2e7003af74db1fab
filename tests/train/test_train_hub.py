"""Training on a dataset named by its hub id (`data.dataset = "owner/name"`): fetched into the hub's cache (served
here from a local folder: no network), the setting kept as the id (the run's config, its checkpoints' model card)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from huggingface_hub import ModelCard

from worldpolicy.hub import dataset_snapshot


def _serve(monkeypatch, folder) -> list[dict[str, Any]]:
    """huggingface_hub's download answering every call with `folder`; the calls made, in order."""
    calls: list[dict[str, Any]] = []

    def download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(folder)

    dataset_snapshot.cache_clear()
    monkeypatch.setattr("huggingface_hub.snapshot_download", download)
    return calls


@pytest.fixture
def served(monkeypatch, tiny_dataset) -> list[dict[str, Any]]:
    yield _serve(monkeypatch, tiny_dataset)
    dataset_snapshot.cache_clear()


def test_training_on_a_hub_dataset_keeps_its_id(served, train_config, tmp_path, monkeypatch):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    monkeypatch.chdir(tmp_path)  # a relative hub id is not made a path from here (nor from the config's folder)
    out = tmp_path / "run"
    config = load_config(train_config(out, optim={"steps": 2}, save_every=2, data={"dataset": "someone/tiny"}))
    assert config.data.dataset == "someone/tiny"
    assert served == [{"repo_id": "someone/tiny", "repo_type": "dataset", "revision": None,
                       "allow_patterns": None}]  # fetched as the config is checked
    Trainer(config, progress=False).run()
    assert len(served) == 1
    assert json.loads((out / "config.json").read_text())["data"]["dataset"] == "someone/tiny"
    [checkpoint] = sorted((out / "checkpoints").iterdir())
    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.to_dict()["datasets"] == ["someone/tiny"] and "- dataset: `someone/tiny`" in card.text


def test_a_relative_dataset_path_shaped_like_an_id_is_no_hub_id(served, train_config, tmp_path, monkeypatch):
    from worldpolicy.train.config import load_config

    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data\.dataset 'runs/data' does not exist: 'runs' is a folder here "
                                                r"without 'data'"):
        load_config(train_config(tmp_path / "out", data={"dataset": "runs/data"}))
    assert served == []


def test_a_hub_checkpoint_to_train_from_gives_its_embodiment_before_its_weights_download(model_repo, tiny_checkpoint,
                                                                                          train_config, tmp_path):
    """`checkpoint = "owner/name"`: its configs are fetched as the run starts (`hub.model_metadata`), so the
    run trains the embodiment the checkpoint was trained for (its embodiment.json), not droid, the default for a
    checkpoint that says nothing; its weights follow as the run loads it, into the same snapshot."""
    import shutil

    from train_setup import TINY_EMBODIMENT

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    repo = tmp_path / "repo"
    shutil.copytree(tiny_checkpoint, repo)
    (repo / "embodiment.json").write_text(json.dumps(TINY_EMBODIMENT))
    calls, snapshot = model_repo(repo)
    raw = train_config(tmp_path / "run", checkpoint="me/pick", optim={"steps": 2}, save_every=2)
    del raw["embodiment"]
    trainer = Trainer(load_config(raw), progress=False)
    assert trainer.config.embodiment["name"] == TINY_EMBODIMENT["name"]
    assert [call["allow_patterns"] is None for call in calls] == [False]  # no weights yet
    trainer.run()
    assert [call["revision"] for call in calls[1:]] == [snapshot.name]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["checkpoint"] == "me/pick"
    # what identifies the weights it started from names the commit read, which loads the same files again
    [saved] = sorted((tmp_path / "run" / "checkpoints").iterdir())
    state = json.loads((saved / "trainer_state.json").read_text())
    assert state["base_checkpoint"]["path"] == f"me/pick@{snapshot.name}"


def test_training_on_a_pinned_hub_dataset_records_the_commit_read(tiny_dataset, train_config, tmp_path, monkeypatch):
    """`data.dataset = "owner/name@REV"` reads that revision; the setting stays as given, and each checkpoint's
    trainer_state.json records the commit the run read (`hub.dataset_source`), so the run can be reproduced."""
    import shutil

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    commit = "4567cdef" * 5
    snapshot = tmp_path / "cache" / "datasets--someone--tiny" / "snapshots" / commit
    shutil.copytree(tiny_dataset, snapshot)
    calls = _serve(monkeypatch, snapshot)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    config = load_config(train_config(out, optim={"steps": 2}, save_every=2, data={"dataset": "someone/tiny@v1"}))
    Trainer(config, progress=False).run()
    dataset_snapshot.cache_clear()
    assert [(call["repo_id"], call["revision"]) for call in calls] == [("someone/tiny", "v1")]
    [checkpoint] = sorted((out / "checkpoints").iterdir())
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["config"]["data"]["dataset"] == "someone/tiny@v1" and state["dataset"] == f"someone/tiny@{commit}"
    assert ModelCard.load(checkpoint / "README.md").data.to_dict()["datasets"] == ["someone/tiny"]  # the repository


def test_an_adapter_trained_from_a_hub_id_names_the_commit_it_was_trained_on(train_config, tiny_checkpoint,
                                                                              model_repo, tmp_path):
    """An adapter checkpoint's base_model.json named its base as the config gave it, `me/pick`: once main moved on (a
    new upload), the adapter loaded onto weights it was not trained on. It names the commit the run started from
    (`models.portable_checkpoint`), which loads those weights again; the run's setting stays as given."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    _, snapshot = model_repo(tiny_checkpoint)
    raw = train_config(tmp_path / "run", checkpoint="me/pick", save_every=1,
                       finetune={"mode": "lora", "lora_save": "adapter"}, optim={"steps": 1, "batch_size": 2})
    Trainer(load_config(raw), progress=False).run()
    step = tmp_path / "run" / "checkpoints" / "step-0000001"
    assert json.loads((step / "base_model.json").read_text())["base_model_name_or_path"] == f"me/pick@{snapshot.name}"
    assert json.loads((step / "trainer_state.json").read_text())["config"]["checkpoint"] == "me/pick"

"""A run that fine-tunes a registered embodiment by name (`bridge`, `droid/relative_pose`) writes no embodiment.json:
its checkpoints name it in trainer_state.json, and every loader uses that name when none is asked for. Before, such a
checkpoint ran as droid, the default, with droid's action head, stats and caption: meaningless actions, no warning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

BRIDGE_FPS, BRIDGE_CHUNK = 5, 16  # the registry's bridge: one camera, its own 10 columns


@pytest.fixture(scope="module")
def bridge_run(tiny_checkpoint, tmp_path_factory) -> dict[str, object]:
    """One step of fine-tuning `embodiment = "bridge"` on a dataset recorded in bridge's own columns."""
    from worldpolicy.data import write_episodes
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("bridge_run")
    rng = np.random.default_rng(0)
    length = BRIDGE_CHUNK + 2
    episode = {"frames": {"action": rng.normal(scale=0.01, size=(length, 10)).astype(np.float32)},
               "videos": {"observation.image": rng.integers(0, 255, (length, 32, 32, 3), dtype=np.uint8)},
               "task": "put the spoon in the pot"}
    write_episodes(root / "ds", [episode], fps=BRIDGE_FPS, video_codec="libx264rgb",
                   features={"action": {"dtype": "float32", "shape": [10],
                                        "names": list(get_embodiment("bridge").columns)},
                             "observation.image": {"dtype": "video", "shape": [32, 32, 3]}})
    raw = {"output_dir": str(root / "run"), "checkpoint": str(tiny_checkpoint), "embodiment": "bridge",
           "device": "cpu", "save_every": 1,
           "data": {"dataset": str(root / "ds"), "chunk_size": BRIDGE_CHUNK, "action_keys": ["action"]},
           "optim": {"steps": 1, "batch_size": 1, "warmup_steps": 0}}
    Trainer(load_config(raw), progress=False).run()
    return {"raw": raw, "checkpoint": root / "run" / "checkpoints" / "step-0000001"}


def _renamed(checkpoint: Path, folder: Path, embodiment: object) -> Path:
    """A copy of `checkpoint` whose run's record names `embodiment` (another registered one, an older record)."""
    shutil.copytree(checkpoint, folder)
    state_file = folder / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["config"]["embodiment"] = embodiment
    state_file.write_text(json.dumps(state))
    return folder


def test_a_checkpoint_trained_on_bridge_runs_as_bridge(bridge_run, caplog):
    from worldpolicy import Policy
    from worldpolicy.embodiments import get_embodiment

    checkpoint = bridge_run["checkpoint"]
    assert not (checkpoint / "embodiment.json").exists()  # the registry's entry, named, not copied
    assert json.loads((checkpoint / "trainer_state.json").read_text())["config"]["embodiment"] == "bridge"
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        policy = Policy.from_pretrained(checkpoint, device="cpu")
        assert policy.embodiment == get_embodiment("bridge")  # its action head slot, stats, caption
        Policy.from_pretrained(checkpoint, "BRIDGE", device="cpu")  # asked for by its name: nothing to say
        assert not caplog.records
        assert Policy.from_pretrained(checkpoint, "droid", device="cpu").embodiment.key == "droid/joint_pos"
    assert [r.getMessage().count("trained for embodiment 'bridge', not 'droid/joint_pos'")
            for r in caplog.records] == [1]


def test_training_on_from_such_a_checkpoint_keeps_its_embodiment(bridge_run, tmp_path):
    """A run started from it with `embodiment` unset trains bridge again, not droid."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = dict(bridge_run["raw"], output_dir=str(tmp_path / "more"), checkpoint=str(bridge_run["checkpoint"]))
    del raw["embodiment"]
    assert Trainer(load_config(raw), progress=False).config.embodiment == "bridge"


def test_a_variant_trained_is_the_variant_used(bridge_run, tmp_path, caplog):
    from worldpolicy import Policy

    checkpoint = _renamed(bridge_run["checkpoint"], tmp_path / "relative", "droid/relative_pose")
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        assert Policy.check_pretrained(checkpoint, device="cpu")[0].key == "droid/relative_pose"
        assert Policy.from_pretrained(checkpoint, device="cpu").embodiment.key == "droid/relative_pose"
        assert not caplog.records
        # a variant alone is the trained robot's other variant, a different action space on the same head: warned
        assert Policy.from_pretrained(checkpoint, variant="joint_pos", device="cpu").embodiment.key == "droid/joint_pos"
    assert [r.getMessage().count("trained for embodiment 'droid/relative_pose', not 'droid/joint_pos'")
            for r in caplog.records] == [1]


def test_older_records_and_unregistered_names(bridge_run, tmp_path):
    """A record without a registered name (an older run, a spec whose embodiment.json is gone) is droid, as it always
    was; a name this process cannot build (registered in Python by its run) is an error naming the record, not droid."""
    from worldpolicy import Policy
    from worldpolicy.policy import checkpoint_embodiment

    for n, stored in enumerate((None, "x/embodiment.json", {"name": "mine"})):
        older = _renamed(bridge_run["checkpoint"], tmp_path / f"older{n}", stored)
        assert checkpoint_embodiment(older, None) == "droid", stored
    unknown = _renamed(bridge_run["checkpoint"], tmp_path / "unknown", "my_arm")
    with pytest.raises(ValueError, match=r"trained for embodiment 'my_arm' \(its trainer_state.json\), which cannot "
                                         r"be built here: .*register it"):
        Policy.check_pretrained(unknown, device="cpu")
    assert Policy.check_pretrained(unknown, "bridge", device="cpu")[0].key == "bridge"  # asked for: used


def test_the_agents_list_the_trained_embodiment(bridge_run):
    from worldpolicy.agents.toolbox import Toolbox, ToolboxConfig

    toolbox = Toolbox(ToolboxConfig(checkpoint_dirs=[bridge_run["checkpoint"]]))
    [row] = toolbox.list_embodiments(checkpoint="step-0000001")["embodiments"]
    assert row["key"] == "bridge"
    assert row["source"] == "registry (checkpoint step-0000001 was trained for it: its trainer_state.json)"
    assert toolbox.list_checkpoints()["checkpoints"][0]["embodiment"] == "bridge"


def test_a_load_reads_the_record_once(bridge_run, tmp_path, monkeypatch):
    """The embodiment a load picks from the record, the check that it is the one trained and the Policy's modes and
    crop all ask for trainer_state.json: one load reads it once, the next load again (a record rewritten between
    loads is seen), and a call outside a load reads it as it is then."""
    from worldpolicy import Policy
    from worldpolicy.fileio import read_trainer_state
    from worldpolicy.policy import trained_embodiment

    checkpoint = _renamed(bridge_run["checkpoint"], tmp_path / "bridge", "bridge")
    reads = []

    def counted(path):
        reads.append(Path(path))
        return read_trainer_state(path)

    monkeypatch.setattr("worldpolicy.policy.read_trainer_state", counted)
    first = Policy.from_pretrained(checkpoint, device="cpu")
    assert (first.embodiment.key, first.center_crop, reads) == ("bridge", None, [checkpoint])
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state["config"]["augment"] = dict(state["config"].get("augment") or {}, enabled=True, crop_area=0.8)
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    assert Policy.from_pretrained(checkpoint, device="cpu").center_crop == 0.8 and reads == [checkpoint] * 2
    assert trained_embodiment(checkpoint) == trained_embodiment(checkpoint) == "bridge" and len(reads) == 4

"""A dataset's card (README.md with the hub's YAML front matter, `data.card`): written by the dataset writer into its
staging folder, so every command that publishes a dataset publishes one, from what the dataset records; readers and
`dataset check` take a dataset that holds one, and a dataset made from others gets a card of its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dataset_factory import make_episode, write_sim_joint_recording

from worldpolicy.cli import main
from worldpolicy.data import LeRobotDataset, LeRobotDatasetWriter, merge_datasets, select_episodes
from worldpolicy.data.card import CARD_FILE
from worldpolicy.data.edit import MERGE_SOURCE, SELECT_SOURCE
from worldpolicy.data.from_sim import SOURCE as SIM_SOURCE


def _dataset(root: Path, provenance=None, names=None, lengths=(5, 4)) -> LeRobotDataset:
    features = {"action": {"dtype": "float32", "shape": [3], "names": names},
                "observation.state": {"dtype": "float64", "shape": [3], "names": None},
                "next.done": {"dtype": "bool", "shape": [1], "names": None},
                "next.reward": {"dtype": "int64", "shape": [1], "names": None},
                "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]}}
    with LeRobotDatasetWriter(root, 10, features, "testbot", video_codec="libx264rgb",
                              provenance=provenance) as writer:
        for i, length in enumerate(lengths):
            ep = make_episode(length, seed=i)
            writer.add_episode(ep["frames"], ep["videos"], ("pick the cube", "push the cube")[i % 2],
                               success=i == 0)
        return writer.finalize()


def _card(root: Path):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(root / CARD_FILE)  # the front matter parses as the hub parses it


def test_a_written_dataset_has_a_card_the_hub_reads_and_the_readers_take(tmp_path, capsys):
    ds = _dataset(tmp_path / "mine")
    card = _card(ds.root)
    meta = card.data.to_dict()
    assert meta["task_categories"] == ["robotics"] and meta["tags"][:2] == ["LeRobot", "worldpolicy"]
    assert "testbot" in meta["tags"]
    assert meta["configs"] == [{"config_name": "default", "data_files": "data/*/*.parquet"}]
    assert "license" not in meta  # nothing records one: left out, never guessed
    assert sorted(str(p.relative_to(ds.root)) for p in ds.root.glob("data/*/*.parquet")) == [
        "data/chunk-000/file-000.parquet"]  # what the viewer's data_files pattern finds
    text = card.text
    assert text.startswith("\n# mine\n") and "2 episodes, 9 frames at 10 fps, robot `testbot`" in text
    assert "1 of 2 episodes succeeded" in text and "failed: [1]" in text
    assert '- "pick the cube"' in text and '- "push the cube"' in text
    assert "| `action` | float32 | [3] |" in text and '"codebase_version": "v3.0"' in text
    assert 'LeRobotDataset.open("path/to/mine")  # or, on the hub, its id: "OWNER/mine"' in text  # open takes both
    assert not list(ds.root.parent.glob(".mine*"))  # written in the staging folder, which is gone
    again = LeRobotDataset.open(ds.root)  # the readers take a dataset with a README.md
    assert again.num_episodes == 2
    assert main(["dataset", "check", str(ds.root)]) == 0
    assert "ok: 2 episodes, 9 frames" in capsys.readouterr().out
    assert "Episodes run 4 to 5 frames (mean 4.5)." in text
    # a served run's first connection, one request: it read "1 episodes, 1 frames ... Episodes run 1 to 1 frames"
    text = _card(_dataset(tmp_path / "one", lengths=(1,)).root).text
    assert "dataset written by worldpolicy: 1 episode, 1 frame at 10 fps" in text
    assert "The episode runs 1 frame." in text
    assert "Each episode runs 4 frames." in _card(_dataset(tmp_path / "alike", lengths=(4, 4)).root).text


def test_the_card_says_how_it_was_made_its_units_and_a_sim_recordings_license(tmp_path):
    from worldpolicy.extras import package_license

    provenance = {"source": SIM_SOURCE, "task": "reach", "seed": 3, "seeds": [3, 4],
                  "columns": ["x", "y", "z"], "units": ["m", "m", "rad"]}
    ds = _dataset(tmp_path / "sim", provenance=provenance, names=["x", "y", "z"])
    card = _card(ds.root)
    assert card.data.license == package_license() == "apache-2.0"  # worldpolicy's own simulation made it
    assert "reach" in card.data.tags
    assert f"made by `{SIM_SOURCE}`" in card.text
    assert '`task` "reach"; `seed` 3.' in card.text and "It also records `seeds`, `columns`, `units`." in card.text
    assert "| `action` | float32 | [3] | x, y, z | m, m, rad |" in card.text
    assert "| `observation.state` | float64 | [3] |  |  |" in card.text  # its names are not the columns: no units


def test_select_and_merge_write_a_new_card_and_leave_the_sources_own_but_its_license(tmp_path):
    src = _dataset(tmp_path / "src", lengths=(5, 4, 6))
    own = "---\nlicense: cc-by-4.0\n---\n# My robot's data\n"
    (src.root / CARD_FILE).write_text(own)  # the user's card, edited by hand
    assert LeRobotDataset.open(src.root).num_episodes == 3
    out = select_episodes(src, tmp_path / "picked", [0, 2]).dataset
    merged = merge_datasets([src, out], tmp_path / "merged").dataset
    for ds, source in ((out, SELECT_SOURCE), (merged, MERGE_SOURCE)):
        card = _card(ds.root)  # a new dataset: a card of its own, from its own records, not a copy of the source's
        assert f"made by `{source}`" in card.text and "My robot's data" not in card.text
        # the source's license passes through (its card's front matter), through the select into the merge too
        assert card.data.license == "cc-by-4.0" and ds.provenance["license"] == "cc-by-4.0"
        assert "## License\n\n`cc-by-4.0`: the license of the dataset it was made from" in card.text
    assert "2 episodes, 11 frames" in _card(out.root).text and "5 episodes, 26 frames" in _card(merged.root).text
    # a merge of datasets that record no seeds keeps lists alone: named, without an empty list of settings before
    assert ("[meta/worldpolicy_provenance.json](meta/worldpolicy_provenance.json).\nIt also records `datasets`, "
            "`dataset_provenance`.") in _card(merged.root).text
    assert (src.root / CARD_FILE).read_text() == own  # the source only read
    np.testing.assert_array_equal(out.episode(1).frames["action"], src.episode(2).frames["action"])
    # the source by its folder's name, not where this machine keeps it; the provenance file keeps the path
    assert '`dataset` "src"' in _card(out.root).text and str(tmp_path) not in _card(out.root).text
    assert out.provenance["dataset"] == str(src.root)


def test_a_card_shows_a_recorded_path_by_its_hub_id_or_name(tmp_path):
    """A path a recording names (an imported file, a source dataset in the hub's cache) is shown as its hub id or its
    name: the card is what `push` publishes, and /home/<user>/... means nothing to its reader."""
    cache = tmp_path / "home" / "alice" / ".cache" / "huggingface" / "hub"
    provenance = {"source": "worldpolicy dataset label", "file": str(tmp_path / "home" / "alice" / "demos.hdf5"),
                  "dataset": str(cache / "datasets--lerobot--pusht" / "snapshots" / "abc")}
    text = _card(_dataset(tmp_path / "ds", provenance=provenance).root).text
    assert '`file` "demos.hdf5"' in text and '`dataset` "lerobot/pusht"' in text
    assert "alice" not in text


def test_a_card_shows_the_command_that_made_it_as_push_sends_its_record(tmp_path):
    """Every dataset command records its command line and the folder it was typed in (`extras.run_record`): the card
    showed both as they were, "/home/alice/data/lift" and `cwd` "alice", while the provenance `push` sends beside it
    shows the path by its name and no cwd (`hub.shared_record`)."""
    home = tmp_path / "home" / "alice"
    provenance = {"source": SIM_SOURCE, "task": "lift",
                  "command": f"worldpolicy dataset from-sim {home / 'data' / 'lift'} --task lift", "cwd": str(home)}
    text = _card(_dataset(tmp_path / "ds", provenance=provenance).root).text
    assert '`command` "worldpolicy dataset from-sim lift --task lift"' in text and "`cwd` null" in text, text
    assert "alice" not in text and str(tmp_path) not in text


def test_a_sim_recordings_joint_features_get_the_units_of_the_layout_it_writes(tmp_path):
    """`dataset from-sim` writes DROID's joint layout split over two features (7 joints, the gripper): the run of
    them is that embodiment's columns, so each gets its units; a feature of other names gets none."""
    from worldpolicy.data.actions import DEFAULT_SOURCE
    from worldpolicy.embodiments import get_embodiment

    joints = write_sim_joint_recording(tmp_path / "rec")
    text = _card(tmp_path / "rec").text
    units = get_embodiment(DEFAULT_SOURCE).units
    assert f"| {', '.join(joints)} | {', '.join(units[:7])} |" in text and "| gripper | 1 |" in text
    assert "| `next.reward` | float32 | [1] |  |  |" in text


def test_a_dataset_made_from_a_sim_recording_keeps_its_joint_units(tmp_path):
    """`select`, `merge` (and `label`) copy a recording's features as they are, but their provenance is their own:
    the cards of a selection, and of a merge of that selection with the recording, read the joints' units from the
    sources' provenance (`dataset_provenance`), as the recording's card gives them; they showed none."""
    from worldpolicy.data.actions import DEFAULT_SOURCE
    from worldpolicy.data.card import recorded_units
    from worldpolicy.embodiments import get_embodiment

    joints = write_sim_joint_recording(tmp_path / "rec")
    units = list(get_embodiment(DEFAULT_SOURCE).units)
    kept = select_episodes(tmp_path / "rec", tmp_path / "kept", [0]).dataset
    both = merge_datasets([tmp_path / "rec", tmp_path / "kept"], tmp_path / "both").dataset
    for ds in (kept, both):
        assert recorded_units(ds) == {"action.joint_position": units[:7], "action.gripper_position": units[7:8]}
        assert f"| {', '.join(joints)} | {', '.join(units[:7])} |" in _card(ds.root).text


def test_a_feature_of_many_columns_is_one_readable_row(tmp_path):
    """A served run's `action_chunk` (32 steps of 8 columns) listed its 256 names in one table row, as wide as a page
    of text; a long list shows its first and last names and the count, info.json all of them."""
    names = [f"{step}:j{i}" for step in range(8) for i in range(5)]
    with LeRobotDatasetWriter(tmp_path / "ds", 10, {"chunk": {"dtype": "float32", "shape": [40], "names": names}},
                              "testbot") as writer:
        writer.add_episode({"chunk": np.zeros((2, 40))}, task="t")
    text = _card(tmp_path / "ds").text
    row = next(line for line in text.splitlines() if line.startswith("| `chunk`"))
    assert row == ("| `chunk` | float32 | [40] | 0:j0, 0:j1, 0:j2, 0:j3, 0:j4, 1:j0, 1:j1, 1:j2, 1:j3, 1:j4, 2:j0, "
                   "2:j1, …, 7:j3, 7:j4 (40 in all: meta/info.json) |  |")
    assert '"7:j4"' in text  # the card's copy of info.json names every one


BIBTEX = "@inproceedings{chi2023diffusionpolicy,\n  title={Diffusion Policy},\n  year={2023}\n}"


def test_a_merge_of_different_licenses_says_so_and_a_citation_is_kept(tmp_path):
    """Merged sources whose licenses differ get no one license (none guessed): the card lists each one's, unknown
    included; a source card's citation (lerobot's `## Citation` bibtex block; its placeholder is none) is cited by
    what is made from it; a dataset whose sources record no license says it is unknown rather than nothing."""
    import json

    mit, apache, bare = (_dataset(tmp_path / name) for name in ("mit", "apache", "bare"))
    (mit.root / CARD_FILE).write_text(f"---\nlicense: mit\n---\n## Citation\n\n```bibtex\n{BIBTEX}\n```\n")
    placeholder = "```bibtex\n[More Information Needed]\n```"  # lerobot's card where it knows no citation
    (bare.root / CARD_FILE).write_text(f"---\ntags: [x]\n---\n## Citation\n\n{placeholder}\n")
    info = json.loads((apache.root / "meta" / "info.json").read_text())
    (apache.root / "meta" / "info.json").write_text(json.dumps({**info, "license": "apache-2.0"}))  # its info.json's
    apache = LeRobotDataset.open(apache.root)
    assert _card(apache.root).data.license is None  # written before it said: its own card is not rewritten
    merged = merge_datasets([mit, apache, bare], tmp_path / "merged").dataset
    card = _card(merged.root)
    assert card.data.license is None
    assert merged.provenance["licenses"] == {str(mit.root): "mit", str(apache.root): "apache-2.0", str(bare.root): None}
    assert "record different licenses, so no one license is claimed for it" in card.text
    assert f'- "{mit.root}": `mit`' in card.text and f'- "{bare.root}": unknown' in card.text
    assert merged.provenance["citations"] == [BIBTEX]
    assert f"## Citation\n\nCite the data it was made from:\n\n```bibtex\n{BIBTEX}\n```" in card.text
    assert "More Information Needed" not in card.text and "`licenses`" not in card.text
    picked = select_episodes(merged, tmp_path / "picked", [0]).dataset  # the citation travels on, from the card
    assert picked.provenance["citations"] == [BIBTEX] and "licenses" not in picked.provenance
    assert "## License\n\nUnknown: nothing it was made from records a license." in _card(picked.root).text
    kept = select_episodes(apache, tmp_path / "kept", [0]).dataset
    assert _card(kept.root).data.license == "apache-2.0"  # from info.json, where its card has none
    # a dataset recorded with no license says so
    assert "## License\n\nUnknown" in _card(_dataset(tmp_path / "plain").root).text

"""`[[data.mixture]]`: one embodiment trained on several datasets at once, each batch position's source drawn by the
tables' weights (`train.data.MixtureSampler`), every source cached and recorded on its own."""

from __future__ import annotations

import json

import numpy as np
import pytest
from train_setup import CAMERAS, IMAGE_SIZE, make_episode

from worldpolicy.train.config import load_config, read_config
from worldpolicy.train.data import MixtureSampler


@pytest.fixture(scope="module")
def other_dataset(tmp_path_factory):
    """A second recording of the trainer tests' robot: three episodes at the same 15 fps."""
    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features

    root = tmp_path_factory.mktemp("mixture_other") / "ds"
    write_episodes(root, (make_episode(s) for s in (2, 1, 0)), fps=15,
                   features=sim_features("panda", IMAGE_SIZE, CAMERAS), robot_type="panda", video_codec="libx264rgb")
    return root


@pytest.fixture(scope="module")
def slow_dataset(tmp_path_factory):
    """The same robot recorded at 10 fps: not the embodiment's rate."""
    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features

    root = tmp_path_factory.mktemp("mixture_slow") / "ds"
    write_episodes(root, (make_episode(s) for s in range(2)), fps=10,
                   features=sim_features("panda", IMAGE_SIZE, CAMERAS), robot_type="panda", video_codec="libx264rgb")
    return root


def _mixed(train_config, out, *tables, **overrides):
    raw = train_config(out, **overrides)
    raw["data"] = {k: v for k, v in raw["data"].items() if k != "dataset"}
    raw["data"]["mixture"] = [dict(t) for t in tables]
    return raw


def test_tables_parse_into_sources_with_their_own_settings(train_config, tiny_dataset, other_dataset, tmp_path):
    raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 3},
                 {"dataset": str(other_dataset), "weight": 1, "episodes": [0, 2], "action_conversion": "none"})
    config = load_config(raw)
    first, second = config.data.sources()
    assert (first.dataset, second.dataset) == (str(tiny_dataset), str(other_dataset))
    assert first.episodes is None and second.episodes == [0, 2]
    assert (first.action_conversion, second.action_conversion) == (None, "none")
    assert first.chunk_size == second.chunk_size == config.data.chunk_size and not first.mixture
    assert first.video_keys == config.data.video_keys  # [data]'s, where a table sets none
    assert config.data.mixture[0].weight == 3.0 and config.to_dict()["data"]["mixture"][1]["episodes"] == [0, 2]
    # one dataset: stored as before mixtures (no `mixture` key in config.json / trainer_state.json)
    assert "mixture" not in load_config(train_config(tmp_path / "one")).to_dict()["data"]


def test_a_relative_dataset_in_a_table_resolves_against_the_config_file(tmp_path, tiny_dataset):
    (tmp_path / "config.toml").write_text(
        'checkpoint = "some/hub-id"\n[data]\nchunk_size = 4\n'
        f'[[data.mixture]]\ndataset = "{tiny_dataset}"\nweight = 1\n'
        '[[data.mixture]]\ndataset = "../sub/ds"\nweight = 2\n[[data.mixture]]\ndataset = "lab/set"\nweight = 1\n')
    config = read_config(tmp_path / "config.toml")
    assert config.data.mixture[1].dataset == str(tmp_path.parent / "sub" / "ds")
    assert config.data.mixture[2].dataset == "lab/set"  # a hub id, as data.dataset takes one


@pytest.mark.parametrize(("table", "data", "validation", "message"), [
    ({"weight": 0}, {}, {}, r"^data.mixture\[1\].weight=0.0: must be a number > 0 and finite"),
    ({"weight": -1.5}, {}, {}, r"^data.mixture\[1\].weight=-1.5: must be a number > 0"),
    ({"weight": float("nan")}, {}, {}, r"^data.mixture\[1\].weight=nan"),
    ({}, {}, {}, r"^data.mixture\[1\].weight=0.0: must be a number > 0"),  # no weight given
    ({"weight": 1, "episodes": [7]}, {}, {},
     r"^data.mixture\[1\].episodes=\[7\]: \[7\] not episodes of data.mixture\[1\].dataset, which has 3"),
    ({"weight": 1, "exclude_episodes": [0, 1, 2]}, {}, {},
     r"^data.mixture\[1\].exclude_episodes=\[0, 1, 2\] leaves out every episode of data.mixture\[1\].dataset: "),
    ({"weight": 1, "success": "some"}, {}, {}, r"^data.mixture\[1\].success='some'; accepted: any, only"),
    ({"weight": 1, "action_conversion": "magic"}, {}, {}, r"^data.mixture\[1\].action_conversion='magic'"),
    ({"weight": 1, "episodes": [0]}, {"episodes": [1]}, {}, r"^data.episodes=\[1\] is set beside \[\[data.mixture\]\]"),
    ({"weight": 1}, {"dataset": "x"}, {}, r"^data.dataset='.*x' is set beside \[\[data.mixture\]\]"),
    ({"weight": 1}, {}, {"episodes": [0]},
     r"^validation.episodes=\[0\] with \[\[data.mixture\]\]: episode indices are each dataset's own; hold episodes"),
    ({"weight": 1, "episodes": [0, 1], "validation_episodes": [1]}, {}, {},
     (r"^data.mixture\[1\].validation_episodes=\[1\] overlaps data.mixture\[1\].episodes=\[0, 1\] \(both name "
      r"\[1\]\): a held-out episode must not be trained on; remove it from data.mixture\[1\].episodes")),
    ({"weight": 1, "validation_episodes": [3]}, {}, {},
     r"^data.mixture\[1\].validation_episodes=\[3\]: \[3\] not episodes of data.mixture\[1\].dataset, which has"),
    ({"weight": 1}, {}, {"every": 2, "action_chunks": 0},
     r"^validation.every=2 scores held-out episodes, but no \[\[data.mixture\]\] table sets validation_episodes"),
])
def test_every_table_is_checked_and_named(train_config, tiny_dataset, other_dataset, tmp_path, table, data,
                                          validation, message):
    raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                 {"dataset": str(other_dataset), **table}, validation=validation)
    raw["data"].update(data)
    with pytest.raises(ValueError, match=message):
        load_config(raw)


def test_a_missing_dataset_or_an_unknown_key_is_named_with_its_table(train_config, tiny_dataset, tmp_path):
    raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                 {"dataset": str(tmp_path / "nowhere"), "weight": 1})
    with pytest.raises(FileNotFoundError, match=r"^data.mixture\[1\].dataset='.*nowhere' does not exist"):
        load_config(raw)
    raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1, "chunk_size": 8})
    with pytest.raises(ValueError, match=r"^data.mixture\[0\]: unknown keys \['chunk_size'\]; accepted: "):
        load_config(raw)
    raw = _mixed(train_config, tmp_path / "run", {"weight": 1})
    with pytest.raises(ValueError, match=r"^data.mixture\[0\].dataset: required"):
        load_config(raw)
    raw["data"]["mixture"] = {"dataset": str(tiny_dataset)}  # `[data.mixture]`, one table, not `[[...]]`
    with pytest.raises(ValueError, match=r"^data.mixture: expected a list of tables \(\[\[data.mixture\]\]"):
        load_config(raw)


def test_a_source_at_another_rate_is_refused_naming_its_table(train_config, tiny_dataset, slow_dataset, tmp_path):
    from worldpolicy.train.trainer import Trainer

    raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                 {"dataset": str(slow_dataset), "weight": 1})
    trainer = Trainer(load_config(raw), progress=False)
    with pytest.raises(ValueError, match=r"^data.mixture\[1\] \(.*\) does not fit embodiment 'tiny_panda' .*: "
                                         r"data.mixture\[1\].dataset '.*' is recorded at 10 fps but embodiment "
                                         r"'tiny_panda' has fps=15"):
        trainer._data()


def test_draws_follow_the_weights_exactly_for_a_seed():
    sampler = MixtureSampler([3.0, 1.0], [5, 7], seed=3, batch_size=8)
    picks = [sampler.picks(step) for step in range(250)]
    sources = np.asarray([[0 if p < 5 else 1 for p in step] for step in picks])
    counts = np.bincount(sources.ravel(), minlength=2)
    assert counts.tolist() == [1491, 509]  # of 2000 positions, weights 3:1 (1500:500 expected)
    assert sampler.drawn == counts.tolist()
    # each source goes through all its windows once a pass, in its own order
    first = [p for step in picks for p in step if p < 5]
    assert sorted(first[:5]) == [0, 1, 2, 3, 4] and sorted(first[5:10]) == [0, 1, 2, 3, 4]
    second = [p for step in picks for p in step if p >= 5]
    assert sorted(second[:7]) == list(range(5, 12))
    # another seed draws otherwise; the same seed the same
    assert MixtureSampler([3.0, 1.0], [5, 7], seed=4, batch_size=8).picks(0) != picks[0]
    assert MixtureSampler([3.0, 1.0], [5, 7], seed=3, batch_size=8).picks(0) == picks[0]


def test_a_restored_sampler_continues_the_same_draws():
    unbroken = MixtureSampler([1.0, 2.0, 1.0], [4, 3, 9], seed=0, batch_size=4)
    sequence = [unbroken.picks(step) for step in range(20)]
    first = MixtureSampler([1.0, 2.0, 1.0], [4, 3, 9], seed=0, batch_size=4)
    for step in range(8):
        first.picks(step)
    state = json.loads(json.dumps(first.state_dict()))  # as trainer_state.json holds it
    assert state["step"] == 8
    resumed = MixtureSampler([1.0, 2.0, 1.0], [4, 3, 9], seed=0, batch_size=4)
    resumed.load_state_dict(state)
    assert [resumed.picks(step) for step in range(8, 20)] == sequence[8:]
    # without a state (an older checkpoint) the draws are replayed from the start: the same numbers
    replayed = MixtureSampler([1.0, 2.0, 1.0], [4, 3, 9], seed=0, batch_size=4)
    assert replayed.picks(13) == sequence[13] and replayed.picks(2) == sequence[2]
    with pytest.raises(ValueError, match="counts draws of 2 sources, but the run trains on 3"):
        resumed.load_state_dict({"step": 1, "drawn": [1, 2]})


@pytest.fixture(scope="module")
def mixed_runs(train_config, tiny_dataset, other_dataset, tmp_path_factory):
    """A 2-source run: 4 steps unbroken, and the same run stopped after 2 steps, then resumed."""
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("mixture_runs")

    def config(out):
        return load_config(_mixed(train_config, out, {"dataset": str(tiny_dataset), "weight": 1},
                                  {"dataset": str(other_dataset), "weight": 3, "episodes": [0, 2]},
                                  optim={"steps": 4}))

    unbroken = Trainer(config(root / "a"), progress=False).run()
    stopped = Trainer(config(root / "b"), progress=False).run(stop_after=2)
    resumed = Trainer(config(root / "b"), progress=False).run()
    return {"root": root, "unbroken": unbroken, "stopped": stopped, "resumed": resumed}


def test_a_mixture_trains_and_its_checkpoint_records_every_source(mixed_runs, tiny_dataset, other_dataset):
    assert [r.step for r in mixed_runs["unbroken"]] == [1, 2, 3, 4]
    assert all(np.isfinite(r.loss) for r in mixed_runs["unbroken"])
    folder = mixed_runs["root"] / "a" / "checkpoints" / "step-0000002"
    state = json.loads((folder / "trainer_state.json").read_text())
    record = state["mixture"]
    assert [r["weight"] for r in record] == [1.0, 3.0] and [r["share"] for r in record] == [0.25, 0.75]
    assert [(r["episodes"], r["dataset_episodes"]) for r in record] == [(2, 2), (2, 3)]
    assert [r["windows"] for r in record] == [18, 18]  # 9 windows of chunk 4 an episode of 10 frames (padded)
    assert sum(r["drawn"] for r in record) == 2 * 2  # 2 steps of batch 2
    assert state["mixture_sampler"] == {"step": 2, "drawn": [r["drawn"] for r in record]}
    assert len(state["data_fingerprint"]) == 2 and len(set(state["data_fingerprint"])) == 2
    assert [t["dataset"] for t in state["config"]["data"]["mixture"]] == [str(tiny_dataset), str(other_dataset)]
    assert state["config"]["data"]["mixture"][1]["source_embodiment"]  # resolved, as [data]'s is for one dataset
    # each source's frames (inference judges frames against every source's), `frames` the first's
    assert [r["frames"] for r in record] == [state["frames"]] * 2 and state["frames"]["cameras"]
    card = (folder / "README.md").read_text()
    assert "weight 1 (25 %" in card and "weight 3 (75 %" in card and "episodes 2 of 3" in card


def test_a_run_on_one_dataset_records_no_mixture_and_shares_a_sources_cache(mixed_runs, train_config, tmp_path):
    """A run on one dataset stores what it stored before mixtures (no `mixture` in config.json or trainer_state.json,
    its `dataset` and `data_fingerprint` one string each), and its cache is the one a mixture source on the same
    dataset reads: the same fingerprint, so neither encodes it again."""
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "one"
    Trainer(load_config(train_config(out, optim={"steps": 1}, save_every=1)), progress=False).run()
    state = json.loads((out / "checkpoints" / "step-0000001" / "trainer_state.json").read_text())
    assert not {"mixture", "mixture_sampler"} & set(state) and "mixture" not in state["config"]["data"]
    assert "mixture" not in json.loads((out / "config.json").read_text())["data"]
    assert isinstance(state["dataset"], str) and isinstance(state["data_fingerprint"], str)
    mixed = json.loads((mixed_runs["root"] / "a" / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state["data_fingerprint"] == mixed["data_fingerprint"][0]  # its first table: tiny_dataset, all episodes


def test_a_resumed_mixture_continues_the_same_draws(mixed_runs):
    unbroken, stopped, resumed = mixed_runs["unbroken"], mixed_runs["stopped"], mixed_runs["resumed"]
    assert [r.step for r in resumed] == [3, 4]
    assert [r.loss for r in stopped] == [r.loss for r in unbroken[:2]]
    assert [r.loss for r in resumed] == [r.loss for r in unbroken[2:]]
    a = json.loads((mixed_runs["root"] / "a" / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    b = json.loads((mixed_runs["root"] / "b" / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert a["mixture_sampler"] == b["mixture_sampler"] and a["mixture_sampler"]["step"] == 4


def test_the_train_report_names_every_source(mixed_runs, tiny_dataset, other_dataset):
    import html
    import re

    from worldpolicy.viz.report import write_report

    text = html.unescape(re.sub(r"<[^>]+>", "", write_report(mixed_runs["root"] / "a").read_text()))
    assert f"dataset 1 of 2{tiny_dataset} (weight 1: 25% of the batch positions)" in text
    assert f"dataset 2 of 2{other_dataset} (weight 3: 75% of the batch positions; episodes 0, 2)" in text


def test_a_new_embodiments_stats_are_every_sources_windows_pooled(mixed_runs, latent_cache_dir):
    """The mixture's normalisation (`LatentCache.joined`): each window of each source counted once, whatever the
    weights; not the first source's stats, nor the second's."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.data import LatentCache, cache_folder

    folder = mixed_runs["root"] / "a" / "checkpoints" / "step-0000004"
    state = json.loads((folder / "trainer_state.json").read_text())
    saved = json.loads((folder / "embodiment.json").read_text())["stats"]
    caches = [LatentCache.load(cache_folder(latent_cache_dir, fp)) for fp in state["data_fingerprint"]]
    layout = get_embodiment(state["config"]["embodiment"]["name"])  # registered by the run, stats aside
    pooled = LatentCache.joined(caches).action_stats(layout)
    assert saved == pooled
    assert all(saved["mean"] != cache.action_stats(layout)["mean"] for cache in caches)
    assert len(LatentCache.joined(caches)) == sum(map(len, caches)) == 36


def test_a_resume_with_other_weights_is_refused(mixed_runs, train_config, tiny_dataset, other_dataset):
    from worldpolicy.train.trainer import Trainer

    raw = _mixed(train_config, mixed_runs["root"] / "a", {"dataset": str(tiny_dataset), "weight": 1},
                 {"dataset": str(other_dataset), "weight": 1, "episodes": [0, 2]}, optim={"steps": 6})
    with pytest.raises(ValueError, match=r"with other settings: data.mixture\[1\].weight: 3.0 -> 1.0\. Put them"):
        Trainer(load_config(raw), progress=False).run()
    raw["data"]["mixture"] = raw["data"]["mixture"][:1]  # a table fewer: the tables named whole
    with pytest.raises(ValueError, match=r"with other settings: data.mixture: \[.*\] -> \[.*\]\. "):
        Trainer(load_config(raw), progress=False).run()


def test_a_pushed_mixture_checkpoint_resumes_where_its_sources_are_found(mixed_runs, train_config, tiny_dataset,
                                                                         other_dataset, tmp_path):
    """A checkpoint pushed with its training state names each source by its folder's own name
    (`hub.shared_state`): compared as one dataset's `data.dataset` is, table by table, the run resumes from it on the
    datasets given (the unbroken run's losses); another dataset in a table is refused naming that table's key."""
    import shutil

    from worldpolicy.hub import shared_state
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "a"  # the pushed run's folder name, as its record names it
    pulled = out / "checkpoints" / "step-0000002"
    shutil.copytree(mixed_runs["root"] / "a" / "checkpoints" / "step-0000002", pulled)
    (pulled / "trainer_state.json").write_bytes(shared_state(pulled))  # what the hub holds
    state = json.loads((pulled / "trainer_state.json").read_text())
    assert [t["dataset"] for t in state["config"]["data"]["mixture"]] == [tiny_dataset.name, other_dataset.name]

    def config(second):
        return load_config(_mixed(train_config, out, {"dataset": str(tiny_dataset), "weight": 1},
                                  {"dataset": str(second), "weight": 3, "episodes": [0, 2]}, optim={"steps": 4}))

    renamed = tmp_path / "renamed"  # its data under another name: not what the record names
    shutil.copytree(other_dataset, renamed)
    with pytest.raises(ValueError, match=rf"other settings: data.mixture\[1\].dataset: '{other_dataset.name}' -> "
                                         rf"'{renamed}'\. Put them back"):
        Trainer(config(renamed), progress=False).run()
    moved = tmp_path / "elsewhere" / other_dataset.name  # the machine it is pulled on keeps it in another folder
    shutil.copytree(other_dataset, moved)
    resumed = Trainer(config(moved), progress=False).run()
    assert [r.step for r in resumed] == [3, 4]
    assert [r.loss for r in resumed] == [r.loss for r in mixed_runs["unbroken"][2:]]


def test_a_resume_on_a_sources_changed_data_is_refused_naming_its_table(train_config, tiny_dataset, other_dataset,
                                                                        tmp_path, monkeypatch):
    """A source re-recorded since the run began is refused naming its table's `dataset`, not `data.dataset` (which a
    mixture leaves empty): before the weights load (its `data_key`), and once they have (its cache's fingerprint, where
    the checkpoint records no `data_key`) without encoding it."""
    import shutil

    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features
    from worldpolicy.train import data as train_data
    from worldpolicy.train.trainer import Trainer

    second = tmp_path / "second"
    shutil.copytree(other_dataset, second)

    def run(steps):
        return Trainer(load_config(_mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                                          {"dataset": str(second), "weight": 1}, optim={"steps": steps})),
                       progress=False).run()

    run(2)
    write_episodes(second, (make_episode(s) for s in (0, 1, 2)), fps=15, robot_type="panda", overwrite=True,
                   features=sim_features("panda", IMAGE_SIZE, CAMERAS), video_codec="libx264rgb")
    monkeypatch.setattr(train_data.LatentCache, "_build", lambda *a, **k: pytest.fail("encoded the changed data"))
    refused = rf"^data.mixture\[1\].dataset '{second}' is not the data this run trained on"
    with pytest.raises(ValueError, match=refused):
        run(4)
    state_file = tmp_path / "run" / "checkpoints" / "step-0000002" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["data_key"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=refused):
        run(4)


def test_a_sources_refusals_name_its_tables_settings(train_config, tiny_dataset, other_dataset, tmp_path):
    """What is refused of a source's settings names them as its table's (`data.mixture[i].key`), where it is raised
    (the prefix passed down, no message rewritten after): its episode selection, action keys and cameras."""
    from worldpolicy.train.trainer import Trainer

    def refused(table, data=None):
        raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                     {"dataset": str(other_dataset), "weight": 1, **table}, data=data or {})
        with pytest.raises(ValueError) as error:
            Trainer(load_config(raw), progress=False)._data()
        return str(error.value)

    text = refused({"success": "only"})
    assert text.startswith(f"data.mixture[1].success='only' keeps the episodes that succeeded, but "
                           f"data.mixture[1].dataset {str(other_dataset)!r} does not say which did")
    assert "(data.mixture[1].success any)" in text
    text = refused({"video_keys": ["observation.images.nowhere"]})
    assert "data.mixture[1].video_keys=['observation.images.nowhere']" in text and " video_keys=" not in text
    text = refused({"action_keys": ["observation.state"], "source_embodiment": "tiny_panda"})
    assert "data.mixture[1].action_keys" in text and "its dataset" not in text
    # the run's settings a source's windows are cut by keep their own names (`run_prefix`)
    from worldpolicy.data import LeRobotDataset, sample_training_examples

    dataset = LeRobotDataset.open(other_dataset)
    with pytest.raises(ValueError, match=r"^data.stride=0 must be an int >= 1"):
        sample_training_examples(dataset, "droid", stride=0, prefix="data.mixture[1].", run_prefix="data.")
    with pytest.raises(ValueError, match=r"^data.mixture\[1\].action_keys=\['action'\]: \['action'\] not among"):
        sample_training_examples(dataset, "droid", prefix="data.mixture[1].", run_prefix="data.")


def test_each_sources_held_out_episodes_are_scored_apart(train_config, tiny_dataset, other_dataset, tmp_path):
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"
    raw = _mixed(train_config, out, {"dataset": str(tiny_dataset), "weight": 1},
                 {"dataset": str(other_dataset), "weight": 1, "validation_episodes": [1]},
                 optim={"steps": 2}, validation={"every": 2, "action_chunks": 0, "windows": 4})
    trainer = Trainer(load_config(raw), progress=False)
    trainer.run()
    (spec, _), (other, _) = trainer._mixture_specs
    assert spec.episodes is None and other.episodes == (0, 2)  # held out of training
    assert trainer.mixture_val_windows == [0, 4] and trainer._val_sources == [1] * 4
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scored = [line for line in lines if "val/loss" in line]
    assert [line["step"] for line in scored] == [0, 2]
    assert all(line["val/loss/source_1"] == line["val/loss"] for line in scored)  # the one source holding some out
    assert "val/loss/source_0" not in scored[0] and scored[0]["val/windows"] == 4
    state = json.loads((out / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert [(r["held_out_episodes"], r["held_out_windows"]) for r in state["mixture"]] == [([], 0), ([1], 4)]
    assert [r["episodes"] for r in state["mixture"]] == [2, 2]
    assert "held out for validation: [1]" in (out / "checkpoints" / "step-0000002" / "README.md").read_text()


def test_each_sources_held_out_action_error_is_what_dataset_eval_measures(train_config, tiny_dataset, other_dataset,
                                                                          tmp_path, caplog):
    """With `validation.action_chunks`, each source holding episodes out samples its chunks on them (read as its table
    reads its dataset): `val/action_mae/source_<i>` is `dataset eval`'s number for that source's dataset and episodes
    on the checkpoint of the validated step, `val/action_mae` and each column's the sources' mean weighted by their
    tables' weights, and the report lists each source's."""
    import html
    import logging
    import re

    import worldpolicy
    from worldpolicy.data.layout import ACTION_KEYS, STATE_KEYS
    from worldpolicy.data.openloop import evaluate_open_loop
    from worldpolicy.train.trainer import Trainer
    from worldpolicy.viz.report import write_report

    out = tmp_path / "run"
    raw = _mixed(train_config, out, {"dataset": str(tiny_dataset), "weight": 1, "validation_episodes": [1]},
                 {"dataset": str(other_dataset), "weight": 3, "validation_episodes": [2]}, optim={"steps": 2},
                 validation={"every": 2, "windows": 1, "action_chunks": 2, "action_steps": 2})
    with caplog.at_level(logging.INFO, logger="worldpolicy.train.trainer"):
        Trainer(load_config(raw), progress=False).run()
    assert "validation_episodes [2] held out of training: 1 of their 9 windows scored and 2 chunks sampled" in \
        caplog.text
    line = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "val/loss" in x][-1]
    assert line["step"] == 2 and line["val/action_chunks"] == 4
    policy = worldpolicy.load_policy(out / "checkpoints" / "step-0000002", steps=2, device="cpu")
    results = [evaluate_open_loop(dataset, policy, tmp_path / f"eval{i}", episodes=[episode], chunks=2, seed=3,
                                  batch_size=2, state_keys=list(STATE_KEYS), action_keys=list(ACTION_KEYS),
                                  plots=False)
               for i, (dataset, episode) in enumerate(((tiny_dataset, 1), (other_dataset, 2)))]
    assert [line[f"val/action_mae/source_{i}"] for i in range(2)] == [r.normalized_mae() for r in results]
    assert results[0].normalized_mae() != results[1].normalized_mae()
    assert line["val/action_mae"] == pytest.approx((results[0].normalized_mae() + 3 * results[1].normalized_mae()) / 4)
    for k, column in enumerate(results[0].columns):
        assert line[f"val/action_mae/{column}"] == pytest.approx((results[0].mae[k] + 3 * results[1].mae[k]) / 4)
    assert "held-out loss" in caplog.text and ", action MAE " in caplog.text
    assert "(data.mixture[0].validation_episodes [1]: " in caplog.text  # each table's own setting, as it is set
    text = html.unescape(re.sub(r"<[^>]+>", "", write_report(out).read_text()))
    assert (f"per mixture source (the headline their mean weighted by the tables' weights): data.mixture[0] "
            f"{line['val/action_mae/source_0']:.4g}, data.mixture[1] {line['val/action_mae/source_1']:.4g}") in text
    assert "per column in its units: " in text and "source_0 " not in text.split("per column in its units: ")[1][:200]


def test_a_batch_drawing_more_than_a_sources_windows_is_warned_naming_its_table(train_config, tiny_dataset,
                                                                                 other_dataset, tmp_path, caplog):
    """Each source is judged by the positions a step draws from it on average (the batch times its share): a
    heavily weighted small source repeats windows within every step, said naming its table's selection."""
    from worldpolicy.train.trainer import Trainer

    def warned(batch_size):
        caplog.clear()
        raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                     {"dataset": str(other_dataset), "weight": 3, "episodes": [0, 2]},
                     optim={"batch_size": batch_size})
        with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
            Trainer(load_config(raw), progress=False)._data()
        return [r.getMessage() for r in caplog.records if "optim.batch_size" in r.getMessage()]

    # 64 positions: 16 from the first source's 18 windows (fine), 48 from the second's 18 (of its 27)
    assert warned(64) == [(
        f"optim.batch_size=64 draws about 48 positions a step from data.mixture[1] (weight 3: 75.0 % of them), more "
        f"than the 18 training windows (chunk_size 4, stride 1) of the episodes selected: data.mixture[1].episodes="
        f"[0, 2] keeps 2 of the 3 episodes of the dataset of data.mixture[1] {other_dataset} (20 of its 30 frames): "
        f"every step holds some windows more than once (with other noise and σ); lower optim.batch_size to 24 or less "
        f"(or data.mixture[1].weight), or record more episodes (all 3 hold only 27 windows)")]
    assert warned(24) == []  # 18 from the second source: each of its windows once a step


def test_every_from_sim_sources_seeds_are_the_checkpoints_training_scenes(tmp_path):
    """`models.training_seeds` (what `worldpolicy sim` warns by and a server announces) read `data.dataset` alone: a
    mixture's sim recordings were never announced. Every table recording the task counts, its seeds together."""
    import numpy as np

    from worldpolicy.data import write_episodes
    from worldpolicy.models import announced_training_seeds, training_seeds
    from worldpolicy.sim.tasks import training_scenes

    def recording(name, task, seeds):
        episode = {"frames": {"action": np.zeros((3, 2), np.float32)}, "task": task}
        return str(write_episodes(tmp_path / name, [episode], fps=15,
                                  provenance={"task": task, "seeds": seeds}).root)

    tables = [{"dataset": recording("a", "reach", [0, 1, 2]), "weight": 1.0},
              {"dataset": str(tmp_path / "real"), "weight": 1.0},  # no recording of the sim's (made elsewhere)
              {"dataset": recording("b", "push", [5, 6]), "weight": 1.0},
              {"dataset": recording("c", "reach", [2, 7]), "weight": 2.0}]
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {"data": {"dataset": "",
                                                                                        "mixture": tables}}}))
    a, b, c = (t["dataset"] for t in tables if t["dataset"] != str(tmp_path / "real"))
    assert training_seeds(ckpt, task="reach") == ("reach", [0, 1, 2, 7], f"its datasets {a}, {c}")
    assert training_seeds(ckpt, task="push") == ("push", [5, 6], f"its dataset {b}")
    assert training_seeds(ckpt) == training_seeds(ckpt, task="lift") == training_seeds(ckpt, task="reach")
    assert announced_training_seeds(ckpt) == {"task": "reach", "seeds": [0, 1, 2, 7], "source": "its datasets a, c"}
    scenes = training_scenes(str(ckpt), "reach", range(6, 9))
    assert scenes.seeds == (7,) and scenes.recorded == (0, 7)
    assert training_scenes(str(ckpt), "push", range(6, 9)).seeds == (6,)


def test_worldpolicy_train_runs_a_mixture_file_and_names_a_flag_it_refuses(train_config, tiny_dataset, other_dataset,
                                                                            tmp_path, capsys):
    from worldpolicy.cli import main

    raw = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                 {"dataset": str(other_dataset), "weight": 2}, optim={"steps": 1}, save_every=1)
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps(raw))
    assert main(["train", str(path), "--episodes", "0", "--no-progress"]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("worldpolicy train: error:")]
    assert error == [("worldpolicy train: error: --episodes=[0] is set beside [[data.mixture]], which names the "
                      "datasets trained on and their episodes: set episodes in the [[data.mixture]] table of the "
                      "dataset they are episodes of, and leave --episodes unset")]
    assert main(["train", str(path), "--no-progress"]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-0000001" / "trainer_state.json").read_text())
    assert [r["weight"] for r in state["mixture"]] == [1.0, 2.0] and state["mixture_sampler"]["step"] == 1


def test_the_sources_caches_are_judged_together_held_out_windows_included(train_config, tiny_dataset, other_dataset,
                                                                           tiny_checkpoint, tmp_path, monkeypatch):
    """Two sources whose latent caches each fit the free disk and RAM alone, but not together, are refused before the
    weights load, the message naming both with their parts and shares, and the settings that shrink the whole."""
    import shutil

    from worldpolicy.engine import loading
    from worldpolicy.engine.loading import local_vae_config
    from worldpolicy.train.data import SHARD_WINDOWS, count_windows, window_bytes, window_ram
    from worldpolicy.train.trainer import Trainer

    def fails(*args, **kwargs):
        raise AssertionError("the weights load")

    monkeypatch.setattr(loading, "load_components", fails)
    plenty = 2**50
    memory, free = [plenty], [plenty]
    monkeypatch.setattr(loading, "device_memory", lambda device: (memory[0], None))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(plenty, 0, free[0]))
    fresh = {"cache_dir": str(tmp_path / "cache")}  # nothing cached: every window is encoded and written here
    validation = {"every": 1, "windows": 2, "action_chunks": 0}
    mixed = _mixed(train_config, tmp_path / "run", {"dataset": str(tiny_dataset), "weight": 1},
                   {"dataset": str(other_dataset), "weight": 3, "validation_episodes": [1]}, data=fresh,
                   validation=validation)
    # each source as a run on it alone
    alone = [train_config(tmp_path / "a", data=fresh),
             train_config(tmp_path / "b", data={**fresh, "dataset": str(other_dataset)},
                          validation={**validation, "episodes": [1]})]

    def check(raw):
        return Trainer(load_config(raw), progress=False)._data()

    trainer = Trainer(load_config(mixed), progress=False)
    trainer._data()
    vae = local_vae_config(tiny_checkpoint)
    sizes, rams, layout = [], [], trainer._windows[1]
    for (spec, _), (val_spec, _), frames, dataset in zip(trainer._mixture_specs, trainer._mixture_val,
                                                          trainer.mixture_frames, trainer.datasets):
        windows = count_windows(spec, dataset)
        held = count_windows(val_spec, dataset) if val_spec is not None else 0  # the second's: its 2 scored
        each = window_bytes(spec, layout, frames, vae)
        sizes.append(each * windows + (window_bytes(val_spec, layout, frames, vae) * held if held else 0))
        rams.append((window_ram(spec, layout) * (windows + held), 2 * min(SHARD_WINDOWS, windows + held) * each))
    assert held == 2 and all(sizes)
    free[0] = max(sizes)
    for raw in alone:
        check(raw)
    free[0] = sum(sizes) - 1
    with pytest.raises(ValueError) as refused:
        check(mixed)
    text = str(refused.value)
    for named in ("the latent caches of the 2 data.mixture sources together", "2 held-out",
                  f"data.mixture[0] ({tiny_dataset})", f"data.mixture[1] ({other_dataset})", "(2 held-out)",
                  "drawn for 25.0 % of the batch positions", "drawn for 75.0 % of the batch positions",
                  "a larger data.stride", "data.mixture[i].episodes", "written to data.cache_dir"):
        assert named in text
    free[0] = sum(sizes)
    check(mixed)
    # the windows' actions: every source's held at once; a build's unwritten shard: one source's at a time
    ram = sum(r for r, _ in rams) + max(s for _, s in rams)
    assert ram - 1 >= max(r + s for r, s in rams)
    memory[0] = ram - 1
    for raw in alone:
        check(raw)
    with pytest.raises(ValueError, match=r"data.mixture\[0\] .*data.mixture\[1\] .*held in RAM.*a machine with more"):
        check(mixed)
    memory[0] = ram
    check(mixed)

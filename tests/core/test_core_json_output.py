"""`--json` on the commands a script runs (`predict`, `sim`, `sim compare`; `dream` and `demo` in their own tests):
one JSON object on stdout (the result's own document, its files' fields, with `run_dir` and the files `written`,
absolute), the lines a person reads on stderr, and an error still one line on stderr with a non-zero status."""

import json
import os

import numpy as np
import pytest

from worldpolicy.cli import main


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("obs") / "obs.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _predict(checkpoint, image, out, *extra) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), "--embodiment", "droid/relative_pose", "--chunk-size",
                 "16", "--resolution-tier", "256", "--image", str(image), "--prompt", "Reach the target", "--steps",
                 "1", "--no-plots", "--out", str(out), *extra])


def test_predict_json_is_the_actions_file_with_where_it_was_written(tiny_checkpoint, image_file, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)  # --out relative: what is printed is absolute all the same
    assert _predict(tiny_checkpoint, image_file, "run", "--json") == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout is the one object, nothing else
    assert doc["run_dir"] == str(tmp_path / "run") and os.path.isabs(doc["run_dir"])
    assert str(tmp_path / "run" / "actions.json") in doc["written"] and all(map(os.path.isabs, doc["written"]))
    # the result's own fields, as actions.json holds them (one place: `Prediction.to_json`), numbers as numbers
    saved = json.loads((tmp_path / "run" / "actions.json").read_text())
    assert {k: doc[k] for k in saved} == saved
    assert doc["schema"] == "worldpolicy.actions/v1" and np.array(doc["actions"]).shape == (16, 10)
    assert isinstance(doc["fps"], float) and doc["settings"]["steps"] == 1
    # what a person reads is on stderr
    assert "policy: 16 x 10 actions" in err and "  wrote " in err


def test_without_json_predict_prints_lines_for_a_person(tiny_checkpoint, image_file, tmp_path, capsys):
    assert _predict(tiny_checkpoint, image_file, tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert out.startswith("policy: 16 x 10 actions") and "  wrote " in out


def test_an_error_under_json_is_one_line_on_stderr_and_a_non_zero_status(tiny_checkpoint, image_file, tmp_path,
                                                                          capsys):
    assert _predict(tiny_checkpoint, image_file, tmp_path / "run", "--json", "--seed", "-1") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("worldpolicy predict: error: --seed")
    pytest.importorskip("mink")
    assert main(["sim", "--policy", "scripted", "--episodes", "0", "--out", str(tmp_path / "s"), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "worldpolicy sim: error: --episodes: expected >= 1, got 0\n"


def _sim(out, *extra) -> int:
    return main(["sim", "--policy", "scripted", "--task", "reach", "--episodes", "2", "--videos", "1",
                 "--image-size", "48x64", "--no-progress", "--out", str(out), *extra])


def test_sim_json_is_the_report_with_where_it_was_written(tmp_path, capsys):
    pytest.importorskip("mink")
    assert _sim(tmp_path / "a", "--json") == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    saved = json.loads((tmp_path / "a" / "report.json").read_text())
    assert {k: doc[k] for k in saved} == saved  # report.json's fields (`EvalReport.to_json`)
    assert doc["success_rate"] == 1.0 and doc["n_episodes"] == 2 and doc["run_dir"] == str(tmp_path / "a")
    assert str(tmp_path / "a" / "videos" / "episode_10000.mp4") in doc["written"]
    assert "reach · scripted: success 2/2" in err
    # `sim compare --json`: compare.json's fields, the table on stderr
    assert _sim(tmp_path / "b") == 0
    capsys.readouterr()
    assert main(["sim", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c"),
                 "--no-plots", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    saved = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert {k: doc[k] for k in saved} == saved and str(tmp_path / "c" / "compare.json") in doc["written"]
    assert len(doc["runs"]) == 2 and "success" in err


def test_a_dataset_summary_names_its_root_absolute(tmp_path, capsys, monkeypatch):
    """`dataset from-sim ROOT --json` (and `dataset info`) printed ROOT as typed: `d2`, relative to a folder the
    script reading it need not be in."""
    pytest.importorskip("mink")
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "from-sim", "d2", "--task", "reach", "--episodes", "1", "--image-size", "48x64",
                 "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == str(tmp_path / "d2")
    assert main(["dataset", "info", "d2"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == str(tmp_path / "d2")

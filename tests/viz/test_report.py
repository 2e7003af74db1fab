import base64
import html.parser
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldpolicy.cli import main
from worldpolicy.processing.video import read_video, write_video
from worldpolicy.viz import report


class _Page(html.parser.HTMLParser):
    """Collects what a browser would be given: sections, media sources, links, table cells."""

    def __init__(self):
        super().__init__()
        self.sections, self.imgs, self.videos, self.links, self.th, self.scripts = [], [], [], [], [], []
        self._in_th = False
        self._text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img":
            self.imgs.append(a["src"])
        elif tag == "video":
            self.videos.append(a["src"])
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "th":
            self._in_th = a.get("scope") != "row"  # column headers; a name/value table's names are row headers
        elif tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.scripts.append(a.get("src") or a.get("href"))

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th:
            self.th.append(data)
        self._text.append(data)

    @property
    def text(self):
        return "".join(self._text)


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


@pytest.fixture
def run_dir(tmp_path, joint_chunk, actions_json):
    run = tmp_path / "run"
    run.mkdir()
    (run / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk)))
    (run / "settings.json").write_text(json.dumps({"command": "predict", "prompt": "put the <cup> away", "seed": 3}))
    video = np.zeros((9, 48, 64, 3), np.uint8)
    video[:, :, :, 1] = 200
    write_video(run / "rollout.mp4", video, 15)
    return run


def test_viz_command_writes_plots_and_animation_beside_rollout(run_dir, capsys):
    assert main(["viz", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in printed] == ["actions.png", "joints.png", "animation.mp4"]
    frames, fps = read_video(run_dir / "plots" / "animation.mp4")
    # one frame per rollout frame (9), then the last one held while the playhead runs to the 32nd action
    assert frames.shape[0] == 32 and fps == pytest.approx(15)
    from worldpolicy.fileio import folder_kind

    assert folder_kind(run_dir / "plots")[0].writer == "viz"  # what the output-folder checks recognise
    # the rollout's green sits in the left panel
    assert frames[0, 60:, 5:40, 1].mean() > 150 and frames[0, 60:, 5:40, 0].mean() < 60


def test_viz_refuses_a_video_its_plots_would_overwrite_naming_the_flags(run_dir, capsys):
    """A --video stored in --out under a name the run writes would be lost: refused in the command line's terms."""
    figs = run_dir.parent / "figs"
    figs.mkdir()
    (figs / "animation.mp4").write_bytes((run_dir / "rollout.mp4").read_bytes())
    assert main(["viz", str(run_dir), "--video", str(figs / "animation.mp4"), "--out", str(figs)]) == 2
    err = capsys.readouterr().err
    assert f"error: --video={str(figs / 'animation.mp4')!r} is in the output folder" in err
    assert "choose another --out (or move the input)" in err


def test_viz_command_writes_the_plots_in_the_format_asked_for_beside_the_pages_pngs(run_dir, capsys):
    """`worldpolicy viz` wrote PNGs only, while `plot_joints(..., "joints.pdf")` wrote a PDF: a paper's figures needed
    Python. `--format pdf` writes them as PDFs, and leaves the PNGs and animation the run's page shows."""
    from worldpolicy.fileio import folder_kind

    assert main(["viz", str(run_dir), "--no-animation"]) == 0
    capsys.readouterr()
    assert main(["viz", str(run_dir), "--format", "pdf", "--no-animation"]) == 0
    printed = [p.rsplit("/", 1)[-1] for p in capsys.readouterr().out.split()]
    assert printed == ["actions.pdf", "joints.pdf"]
    assert (run_dir / "plots" / "joints.pdf").read_bytes().startswith(b"%PDF-")
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["actions.pdf", "actions.png", "joints.pdf",
                                                                      "joints.png"]
    figs = run_dir.parent / "figs"
    assert main(["viz", str(run_dir), "--format", "svg", "--no-animation", "--out", str(figs)]) == 0
    assert folder_kind(figs)[0].writer == "viz"  # a folder of SVGs is viz's, as one of PNGs is
    with pytest.raises(SystemExit) as refused:  # argparse's choices: before anything is read or written
        main(["viz", str(run_dir), "--format", "jpg"])
    assert refused.value.code == 2
    assert "argument --format: invalid choice: 'jpg' (choose from 'png', 'pdf', 'svg')" in capsys.readouterr().err


def test_viz_command_reports_missing_input(tmp_path, capsys):
    assert main(["viz", str(tmp_path)]) == 2
    assert "has no actions.json (a predict run's action chunk, what viz draws)\n" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{}")  # a sim run: its page is `report`'s
    assert main(["viz", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"it holds a sim run (report.json): `worldpolicy report {tmp_path}` writes its page" in err
    np.save(tmp_path / "chunk.npy", np.zeros((4, 8)))  # forward dynamics reads one; it names no columns or rate
    assert main(["viz", str(tmp_path / "chunk.npy"), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert "plots read a worldpolicy.actions/v1 .json file" in err and "not .npy" in err and "utf-8" not in err
    assert not (tmp_path / "figs").exists()


def test_viz_of_a_folder_of_runs_names_the_runs_it_can_draw(tmp_path, capsys):
    """`worldpolicy viz runs/demo` (the demo's --out, not one of its runs) said only that it has no actions.json;
    `report` named the runs inside, viz now names those it draws."""
    for mode in ("policy", "inverse_dynamics"):
        (tmp_path / mode).mkdir()
        (tmp_path / mode / "actions.json").write_text("{}")
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "report.json").write_text("{}")  # a sim run: no chunk to draw
    assert main(["viz", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (f"; the predict runs in it are inverse_dynamics, policy: draw one of them, e.g. `worldpolicy viz "
            f"{tmp_path / 'inverse_dynamics'}`") in err


def test_report_is_self_contained_and_shows_the_run(run_dir):
    main(["viz", str(run_dir), "--no-animation"])
    out = report.write_report(run_dir)
    assert out == run_dir / "index.html"
    page = _parse(out)
    assert page.sections == ["summary", "videos", "plots", "actions", "settings", "files"]
    assert page.scripts == []  # nothing loaded from outside the page
    assert len(page.imgs) == 2 and all(src.startswith("data:image/png;base64,") for src in page.imgs)
    png = base64.b64decode(page.imgs[0].split(",", 1)[1])
    assert png == (run_dir / "plots" / "actions.png").read_bytes()
    assert len(page.videos) == 1 and page.videos[0].startswith("data:video/mp4;base64,")
    # action table headers carry units (a unitless column none: "gripper [1]" read as an index), one row per step
    assert "joint_0 [rad]" in page.th and "gripper" in page.th and "gripper [1]" not in page.th
    assert len(re.findall(r"<tr><td>\d+</td>", out.read_text())) == 32
    # settings are escaped, not injected
    assert "put the &lt;cup&gt; away" in out.read_text() and "<cup>" not in out.read_text()
    assert {"./actions.json", "./settings.json", "./rollout.mp4", "./plots/actions.png"} <= set(page.links)
    assert "predict run" in page.text


def test_the_header_counts_the_runs_files_as_its_list_does_in_words_that_agree(run_dir):
    """It said "1 videos", and a rewritten page counted its previous self among the files its list leaves out."""
    main(["viz", str(run_dir), "--no-animation"])  # writes the page once
    page = report.write_report(run_dir).read_text()
    header = page[page.index("<header>"):page.index("</header>")]
    assert header.endswith(" · 1 video · 2 plots · 5 files</p>"), header
    assert page.count("<tr><td class=k><a href=") == 5


def test_a_predict_runs_summary_names_its_prompt(tmp_path, joint_chunk, actions_json):
    """The prompt was only in the settings at the foot of the page."""
    doc = actions_json("droid", joint_chunk)
    doc["settings"]["prompt"] = 'put the <cup> & "lid" away'
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    html = report.write_report(tmp_path).read_text()
    summary = html[html.index("<section id=summary>"):html.index("</section>")]
    assert "<div class=card><b>prompt</b><span>put the &lt;cup&gt; &amp; &quot;lid&quot; away</span></div>" in summary


def test_report_links_large_videos_instead_of_embedding(run_dir, monkeypatch):
    monkeypatch.setattr(report, "MAX_EMBED_VIDEO_BYTES", 10)
    page = _parse(report.write_report(run_dir))
    assert page.videos == ["./rollout.mp4"]


def test_a_many_episode_sim_run_embeds_videos_up_to_a_page_budget(tmp_path, monkeypatch):
    """Every episode of a sim run was embedded: 300 episodes made a page of tens of MB. The first ones stay embedded,
    the rest are linked, and each caption says which and why."""
    sim = tmp_path / "sim"
    (sim / "videos").mkdir(parents=True)
    (sim / "report.json").write_text(json.dumps({"schema": "worldpolicy.sim_eval/v1", "success_rate": 1.0}))
    clip = np.zeros((4, 32, 32, 3), np.uint8)
    for k in range(6):
        write_video(sim / "videos" / f"episode_{k:04d}.mp4", clip + 40 * k, 15)
    sizes = [(sim / "videos" / f"episode_{k:04d}.mp4").stat().st_size for k in range(6)]
    monkeypatch.setattr(report, "MAX_EMBED_VIDEOS_TOTAL_BYTES", sizes[0] + sizes[1] + sizes[2] // 2)
    page = _parse(report.write_report(sim))
    assert [src.startswith("data:video/mp4;base64,") for src in page.videos] == [True, True] + [False] * 4
    assert page.videos[2:] == [f"./videos/episode_{k:04d}.mp4" for k in range(2, 6)]
    assert page.text.count("linked, not embedded: the page holds at most") == 4
    monkeypatch.setattr(report, "MAX_EMBED_VIDEOS_TOTAL_BYTES", sum(sizes))
    page = _parse(report.write_report(sim))
    assert all(src.startswith("data:") for src in page.videos) and "linked, not embedded" not in page.text


def test_report_links_are_relative_paths_and_a_bad_file_is_a_note(tmp_path):
    """A file named like a URL scheme or holding '#'/'?' stays a link to that file; a field the report cannot use
    becomes a note naming the file, and the rest of the page is still written."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("javascript:alert(1)", "clip #1.txt", "50% done?.txt"):
        (run / name).write_text("x")
    (run / "actions.json").write_text(json.dumps({"schema": "worldpolicy.actions/v1", "mode": "policy",
                                                  "columns": ["a", "b"], "units": ["m", "m"], "fps": 10,
                                                  "actions": [[0.0, 1.0], [2.0]], "timings_s": {"total": None}}))
    (run / "metrics.jsonl").write_bytes(b"\xff\xfe\x00binary")
    (run / "settings.json").write_text(json.dumps({"caption": "the 香蕉"}, ensure_ascii=True))
    page = _parse(report.write_report(run))
    assert {"./javascript%3Aalert%281%29", "./clip%20%231.txt", "./50%25%20done%3F.txt"} <= set(page.links)
    html = (run / "index.html").read_text()
    assert "actions.json" in html and "could not be" in html and "metrics.jsonl could not be plotted" in html
    assert "the 香蕉" in html


def test_a_png_a_browser_cannot_show_is_a_note_not_a_broken_image(run_dir):
    """A PNG cut short (an interrupted copy) was embedded as is: a broken-image icon, nothing saying which or why."""
    main(["viz", str(run_dir), "--no-animation"])
    whole = (run_dir / "plots" / "actions.png").read_bytes()
    (run_dir / "plots" / "cut.png").write_bytes(whole[: len(whole) // 2])
    (run_dir / "notes.png").write_text("not an image")
    page = _parse(report.write_report(run_dir))
    assert len(page.imgs) == 2 and page.sections[0] == "notes"  # actions.png and joints.png
    assert "notes.png is not shown: not a readable image" in page.text
    assert "plots/cut.png is not shown: not a readable image (image file is truncated" in page.text
    assert {"./notes.png", "./plots/cut.png"} <= set(page.links)  # still listed with the run's files


def test_the_observation_cameras_are_shown_as_the_observation_not_as_plots(run_dir):
    """`worldpolicy demo` writes its input cameras to observation/*.png: the page listed them under "Plots"."""
    from PIL import Image

    main(["viz", str(run_dir), "--no-animation"])
    (run_dir / "observation").mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(run_dir / "observation" / "wrist.png")
    html = report.write_report(run_dir).read_text()
    observation = html.split("<section id=observation>", 1)[1].split("</section>", 1)[0]
    plots = html.split("<section id=plots>", 1)[1].split("</section>", 1)[0]
    assert "observation/wrist.png" in observation and "observation/" not in plots
    assert "plots/actions.png" in plots and html.index("id=observation") < html.index("id=videos")


def test_a_file_name_that_is_not_utf8_and_a_lone_surrogate_in_json_are_shown_not_fatal(tmp_path):
    """A file named with bytes that are not UTF-8 (or a JSON string holding a lone surrogate) stopped the report:
    "'utf-8' codec can't encode character '\\udcff'... surrogates not allowed"."""
    run = tmp_path / "run"
    run.mkdir()
    with open(os.path.join(os.fsencode(run), b"\xffclip.txt"), "w") as fh:
        fh.write("x")
    (run / "metrics.json").write_text('{"note": "half an emoji \\ud83d", "success_rate": 0.5}')
    page = _parse(report.write_report(run))
    assert "./%FFclip.txt" in page.links and "?clip.txt" in page.text and "half an emoji ?" in page.text


def test_report_for_train_and_sim_runs(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    lines = [json.dumps({"step": i, "loss": 1.0 / (i + 1), "lr": 1e-4}) for i in range(20)] + ["not json"]
    (train / "metrics.jsonl").write_text("\n".join(lines))
    page = _parse(report.write_report(train))
    assert "plots" in page.sections and len(page.imgs) == 1
    assert "metrics.jsonl logged, over its steps (20 records)" in page.text and "train run" in page.text
    (train / "metrics.jsonl").write_text(lines[0])  # a run as long as log_every: "1 records"
    assert re.search(r"metrics\.jsonl logged, over its steps \(1 record\)", _parse(report.write_report(train)).text)

    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "metrics.json").write_text(json.dumps({"episodes": 4, "success_rate": 0.5, "per_episode": {"0": True}}))
    page = _parse(report.write_report(sim))
    assert "metrics" in page.sections and "success_rate" in page.text and "sim run" in page.text
    assert "per_episode.0" in page.text


def test_a_recipe_run_shows_its_summary_and_is_named_for_what_wrote_it(tmp_path):
    """A from-scratch recipe's folder was titled "run run · recipe" and its summary.json (stages, wall times, the
    evaluation's success rate) was only a file in the list; a folder of another metrics file read "run run" too."""
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "summary.json").write_text(json.dumps({"recipe": "reach-from-scratch", "stages": {
        "evaluation": {"wall_s": 300.0, "success_rate": 0.89}}, "total_wall_s": 4920.0}))
    page = _parse(report.write_report(recipe))
    assert "metrics" in page.sections and "recipe run · recipe" in page.text and "run run" not in page.text
    assert "stages.evaluation.success_rate0.89" in page.text and "total_wall_s4920" in page.text
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    assert "<h1>run · other</h1>" in report.write_report(other).read_text()
    assert "<h1>mine</h1>" in report.write_report(other, "mine").read_text()


def test_report_notes_broken_json_and_missing_dir(tmp_path):
    (tmp_path / "actions.json").write_text("{broken")
    page = _parse(report.write_report(tmp_path))
    assert page.sections[0] == "notes" and "actions.json could not be read" in page.text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.write_report(tmp_path / "nope")
    (tmp_path / "afile").write_text("x")  # was "does not exist" too
    with pytest.raises(FileNotFoundError, match="afile' is a file, not a folder"):
        report.write_report(tmp_path / "afile")


def test_report_command(run_dir, capsys):
    assert main(["report", str(run_dir), "--title", "my run"]) == 0
    assert capsys.readouterr().out.strip().endswith("index.html")
    assert "<title>my run</title>" in (run_dir / "index.html").read_text()


def test_report_refuses_a_checkpoint_or_a_dataset(tmp_path, capsys):
    """Their index.html (a model card, a dataset page) is not ours to replace, and they are no run to report on."""
    for marker in ("model_index.json", "meta/info.json"):
        folder = tmp_path / marker.split("/")[0].split(".")[0]
        (folder / marker).parent.mkdir(parents=True)
        (folder / marker).write_text("{}")
        (folder / "index.html").write_text("theirs")
        assert main(["report", str(folder)]) == 2
        assert f"run_dir: {str(folder)!r} holds a " in capsys.readouterr().err
        assert (folder / "index.html").read_text() == "theirs"
        with pytest.raises(ValueError, match=rf"\({marker}\), not a training run"):
            report.write_report(folder)


def test_report_refusing_a_dataset_or_a_runs_checkpoint_names_the_page_to_write(tmp_path, capsys, monkeypatch):
    """`report data/reach` and `report runs/x/checkpoints/step-N` (the folders a user has in hand after from-sim and
    train) were told only "choose another run_dir": the dataset's page is `dataset show`'s, the checkpoint's its
    training run's."""
    dataset = tmp_path / "data" / "reach"
    (dataset / "meta").mkdir(parents=True)
    (dataset / "meta" / "info.json").write_text("{}")
    run = tmp_path / "runs" / "my_reach"
    step = run / "checkpoints" / "step-0000010"
    step.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 0.2}\n')
    (step / "base_model.json").write_text("{}")
    assert main(["report", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert f"choose another run_dir; a dataset's page: worldpolicy dataset show {dataset} --out DIR" in err
    assert main(["report", str(step)]) == 2
    assert f"choose another run_dir; its training run's page: worldpolicy report {run}" in capsys.readouterr().err
    for inside, named in ((run / "checkpoints", step.name), (step, ".")):  # a path relative to where the user is
        monkeypatch.chdir(inside)
        assert main(["report", named]) == 2
        named_run = re.search(r"its training run's page: worldpolicy report (.+)$", capsys.readouterr().err.strip())
        assert named_run is not None and os.path.samefile(named_run[1], run), named
    loose = tmp_path / "loose"  # a checkpoint in no run's checkpoints/: nothing more to say
    loose.mkdir()
    (loose / "model_index.json").write_text("{}")
    assert main(["report", str(loose)]) == 2
    assert capsys.readouterr().err.rstrip().endswith("choose another run_dir")


def test_report_refuses_a_folder_that_holds_no_run(tmp_path, capsys):
    """An empty or unrelated folder (the wrong path given) got an index.html listing its files, and exit 0."""
    photos = tmp_path / "photos"
    for name in ("cat.png", "notes.txt", "plots/dog.png", "clips/walk.mp4"):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", photos):
        before = sorted(folder.rglob("*"))
        assert main(["report", str(folder)]) == 2
        err = capsys.readouterr().err
        assert f"report: error: run_dir: {str(folder)!r} holds no run output to report on; a run directory holds " in err
        assert "actions.json (a predict run)" in err and "report.json (a sim run)" in err and "*.jsonl" in err
        assert sorted(folder.rglob("*")) == before  # nothing written
        with pytest.raises(ValueError, match="holds no run output"):
            report.write_report(folder)
    (photos / "train.jsonl").write_text('{"step": 0, "loss": 1.0}\n')  # a log the page plots: a run
    assert main(["report", str(photos)]) == 0 and (photos / "index.html").is_file()


def test_report_of_a_folder_of_runs_names_them(tmp_path, capsys):
    """`worldpolicy report runs/demo` (demo's --out holds a run per mode and a sim run) said only that it held no
    run; it names the runs inside and the one to give."""
    demo = tmp_path / "demo"
    for run, marker in (("policy", "actions.json"), ("sim", "report.json")):
        (demo / run).mkdir(parents=True)
        (demo / run / marker).write_text("{}")
    (demo / "notes").mkdir()
    assert main(["report", str(demo)]) == 2
    err = capsys.readouterr().err
    assert (f"holds no run output to report on; the runs in it are policy, sim: report one of them, e.g. "
            f"{str(demo / 'policy')!r}; a run directory holds") in err
    assert not (demo / "index.html").exists()


def test_viz_rerun_into_the_same_folder_keeps_no_figure_of_the_earlier_input(tmp_path, actions_json, joint_chunk,
                                                                               pose_chunk):
    """A pose run's ee_path.png and animation stayed beside a joint run's plots drawn into the same folder."""
    from worldpolicy.viz.run import visualize

    pose, joints = tmp_path / "pose.json", tmp_path / "joints.json"
    pose.write_text(json.dumps(actions_json("droid/relative_pose", pose_chunk)))
    joints.write_text(json.dumps(actions_json("droid", joint_chunk)))
    out = tmp_path / "figs"
    first = {p.name for p in visualize(pose, out)}
    assert {"ee_path.png", "animation.mp4"} <= first
    (out / "notes.txt").write_text("mine")
    second = {p.name for p in visualize(joints, out, animate=False)}
    assert {p.name for p in out.iterdir()} == second | {"notes.txt"} and "joints.png" in second


def test_viz_refreshes_the_runs_page_it_draws_for(run_dir, capsys):
    """index.html embeds the plots: redrawing them left the page showing the old figures and action table."""
    assert main(["report", str(run_dir)]) == 0
    doc = json.loads((run_dir / "actions.json").read_text())
    doc["actions"][0][0] = 0.98765
    (run_dir / "actions.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["viz", str(run_dir), "--no-animation"]) == 0
    assert capsys.readouterr().out.split()[-1].endswith("index.html")
    assert "0.98765" in (run_dir / "index.html").read_text()
    assert main(["viz", str(run_dir), "--no-animation", "--out", str(run_dir.parent / "elsewhere")]) == 0
    assert not capsys.readouterr().out.split()[-1].endswith("index.html")  # plots drawn elsewhere: the page stays


def test_a_sim_reports_episodes_are_a_table_not_a_count(tmp_path):
    """The page showed `episodes [2 items]`: seeds, outcomes, lengths and prompts were only in report.md."""
    sim = tmp_path / "sim"
    sim.mkdir()
    episodes = [{"seed": 0, "success": True, "steps": 26, "final_distance_m": 0.0277, "prompt": "reach the <red> ball"},
                {"seed": 1, "success": False, "steps": 60, "final_distance_m": 0.21, "prompt": "reach the blue ball"}]
    (sim / "report.json").write_text(json.dumps({"schema": "worldpolicy.sim_eval/v1", "success_rate": 0.5,
                                                 "episodes": episodes}))
    page = _parse(report.write_report(sim))
    assert page.sections[:3] == ["summary", "metrics", "records-episodes"]
    assert page.th[:5] == ["seed", "success", "steps", "final_distance_m", "prompt"]
    html = (sim / "index.html").read_text()
    assert "<tr><td>1</td><td>False</td><td>60</td><td>0.21</td>" in html and "reach the &lt;red&gt; ball" in html
    assert "[2 items]" not in html and "success_rate" in html


def test_a_long_sim_reports_table_keeps_every_failed_episode(tmp_path, monkeypatch):
    """The table showed the first 200 episodes of 300: failures after episode 200 were on no page."""
    sim = tmp_path / "sim"
    sim.mkdir()
    failed = {5, 250, 299}
    episodes = [{"seed": i, "success": i not in failed, "steps": 30} for i in range(300)]
    (sim / "report.json").write_text(json.dumps({"schema": "worldpolicy.sim_eval/v1", "episodes": episodes}))
    html = report.write_report(sim).read_text()
    table = html.split("<section id='records-episodes'>", 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(True|False)</td>", table)
    assert len(rows) == report.MAX_TABLE_ROWS
    assert {int(seed) for seed, ok in rows if ok == "False"} == failed
    assert [int(seed) for seed, _ in rows] == sorted(int(seed) for seed, _ in rows)  # episode order kept
    assert "200 of 300 rows: all 3 with success false, and the first 197 of the other 297; the 100 left out include " \
           "no failure" in table

    monkeypatch.setattr(report, "MAX_TABLE_ROWS", 2)  # more failures than room: every one is still listed
    html = report.build_report_html(sim)
    assert len(re.findall(r"<tr><td>\d+</td><td>False</td>", html)) == 3
    assert "3 of 300 rows: all 3 with success false, and the first 0 of the other 297" in html

    (sim / "report.json").write_text(json.dumps({"schema": "worldpolicy.sim_eval/v1",
                                                 "episodes": [{"seed": i} for i in range(300)]}))
    assert "first 2 of 300 rows" in report.build_report_html(sim)  # no outcome column: the first rows, as before


def test_a_sim_run_is_headed_by_its_outcome_and_each_episode_video_names_its_episode(tmp_path):
    """A sim run's page opened on unnamed episode videos: which one failed, and that only 2 of the 3 requested
    episodes ran (an interrupted run), was in the tables further down or nowhere."""
    sim = tmp_path / "sim"
    (sim / "videos").mkdir(parents=True)
    episodes = [{"seed": 7, "success": True, "steps": 26, "final_distance_m": 0.0277, "prompt": "reach the <red> ball"},
                {"seed": 8, "success": False, "steps": 60, "final_distance_m": 0.21, "prompt": "reach the blue ball"}]
    (sim / "report.json").write_text(json.dumps({
        "schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "panda_reach", "robot": "panda",
        "strategy": {"kind": "execute"}, "control_hz": 15.0, "successes": 1, "success_rate": 0.5,
        "ci95": [0.094, 0.906], "episodes_requested": 3, "episodes": episodes}))
    for seed in (7, 8):
        write_video(sim / "videos" / f"episode_{seed:04d}.mp4", np.zeros((3, 32, 32, 3), np.uint8), 15)
    Image.new("RGB", (8, 8)).save(sim / "report.png")
    page = _parse(report.write_report(sim))
    assert page.sections[:3] == ["summary", "plots", "videos"]  # its success plot above what may be 300 episodes
    html = (sim / "index.html").read_text()
    cards = dict(re.findall(r"<div class=card><b>([^<]*)</b><span>([^<]*)</span></div>", html))
    assert cards["success"] == "1/2" and cards["success rate"] == "50.0 % (95 % Wilson CI 9.4-90.6 %)"
    assert cards["incomplete"] == "2 of 3 episodes ran" and cards["task"] == "reach"
    outcomes = re.findall(r"<span class=episode>([^<]*)</span><br><a href='\./(videos/[^']*)'", html)
    assert outcomes == [
        ("seed 7 · success · 26 steps · final distance 2.8 cm · “reach the &lt;red&gt; ball”",
         "videos/episode_0007.mp4"),
        ("seed 8 · failure · 60 steps · final distance 21.0 cm · “reach the blue ball”",
         "videos/episode_0008.mp4")]


def test_a_sim_run_with_rtc_says_it_and_its_hand_over_jumps_in_cards(tmp_path):
    """`worldpolicy sim --rtc`: the strategy card says it, and a card the hand-overs' mean jump against the
    within-chunk one (what shows real-time chunking working)."""
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "report.json").write_text(json.dumps({
        "schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "ckpt", "robot": "panda",
        "strategy": {"kind": "async"}, "rtc": True, "control_hz": 15.0, "successes": 1, "success_rate": 1.0,
        "ci95": [0.2, 1.0], "episodes_requested": 1, "mean_handover_jump_rad": 0.0123, "mean_chunk_jump_rad": 0.011,
        "episodes": [{"seed": 7, "success": True, "steps": 26, "final_distance_m": 0.02, "prompt": "reach"}]}))
    report.write_report(sim)
    cards = dict(re.findall(r"<div class=card><b>([^<]*)</b><span>([^<]*)</span></div>",
                            (sim / "index.html").read_text()))
    assert cards["strategy"] == "async + rtc" and cards["hand-over jump"] == "0.0123 rad (in-chunk 0.0110)"


def test_training_curves_name_each_field_above_its_panel(tmp_path):
    """Long names as y labels ran into the tick labels, the title sat inside the first panel, a constant world_size
    took a flat panel, and an 80 → 1 loss was a flat line after its first tenth."""
    run = tmp_path / "lora_run"
    run.mkdir()
    lines = [{"step": s, "loss": 80.0 / s, "loss_action_inverse_dynamics": 40.0 / s, "lr": 1e-4 * min(1, s / 10),
              "world_size": 1} for s in range(1, 101)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, n = report.log_curves_figure(run / "metrics.jsonl")
    assert n == 100
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in axes] == [  # each loss under its running mean, which it says
        "loss · line: mean of the last 5 points (log scale)",
        "loss_action_inverse_dynamics · line: mean of the last 5 points (log scale)", "lr"]
    assert all(ax.get_ylabel() == "" for ax in axes) and axes[-1].get_xlabel() == "training step"
    assert fig.get_suptitle() == "lora_run: metrics.jsonl\n100 records; constant: world_size = 1"
    fig.canvas.draw()
    assert fig._suptitle.get_window_extent().y0 > max(ax.get_tightbbox().y1 for ax in axes)


@pytest.mark.parametrize("log", ['{"step": 1, "loss": 2.0, "lr": 0.1}\n{"step": 2, "loss": 1.5, "lr": 0.2}\n',
                                 '{"step": 10, "loss": 0.23, "lr": 1e-05}\n'])
def test_a_short_run_is_labelled_at_whole_steps(tmp_path, log):
    """A 2-step run's axis was ticked at 1.0, 1.2, ... 2.0: steps between steps that never happened. A 10-step run
    logs once (`log_every` 10): its one point's axis was ticked 9.45, 9.60, ... 10.50, with no integer but 10 in
    view for the whole-step ticks to take."""
    run = tmp_path / "short"
    run.mkdir()
    (run / "metrics.jsonl").write_text(log)
    fig, _ = report.log_curves_figure(run / "metrics.jsonl")
    fig.canvas.draw()
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert shown and all(float(t).is_integer() for t in shown), shown


def test_a_run_that_logged_once_draws_its_loss_and_says_the_other_values(tmp_path):
    """A 10-step run logs one record (`log_every` 10): it drew ten panels of a single dot each (world_size, elapsed_s,
    step_s, ...). Its loss is drawn and the other fields' values are said in the heading, with why there is no
    curve; a run of two records keeps its panels."""
    run = tmp_path / "short"
    run.mkdir()
    line = {"step": 10, "loss": 0.23, "loss_action_policy": 0.2, "lr": 1e-05, "world_size": 1, "step_s": 0.5,
            "elapsed_s": 5.0}
    (run / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    fig, n = report.log_curves_figure(run / "metrics.jsonl")
    assert n == 1 and [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()] == ["loss"]
    assert " ".join(fig.get_suptitle().split()) == (
        "short: metrics.jsonl 1 record, one point per field (a curve needs two logged steps: log_every): "
        "loss_action_policy=0.2, elapsed_s=5, lr=1e-05, step_s=0.5, world_size=1")
    fig.canvas.draw()
    assert fig._suptitle.get_window_extent().y0 > fig.axes[0].get_tightbbox().y1  # a taller figure, not overlap
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(
        {**line, "step": s, "loss": 1 / s, "loss_action_policy": 2 / s, "step_s": s / 10, "elapsed_s": s})
        for s in (10, 20)))
    fig, _ = report.log_curves_figure(run / "metrics.jsonl")
    assert [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()] == [
        "loss", "loss_action_policy", "elapsed_s", "step_s"]
    assert fig.get_suptitle() == "short: metrics.jsonl\n2 records; constant: lr = 1e-05, world_size = 1"


def test_a_long_training_log_is_drawn_from_its_first_step_to_its_last(tmp_path):
    """Only the first 100 000 lines of a log were read: a longer run's curves ended there, as if training had. Every
    line is read now, a long field thinned evenly to at most MAX_CURVE_POINTS, its last point kept; a sparse field
    (evaluations) keeps all its points."""
    run = tmp_path / "train"
    run.mkdir()
    last = report.MAX_CURVE_POINTS * 6 + 7
    lines = [f'{{"step": {s}, "loss": {1.0 + 100.0 / s}}}' for s in range(1, last + 1)]
    lines[999::1000] = [f'{{"step": {s}, "eval_success_rate": {s / last}}}' for s in range(1000, last + 1, 1000)]
    (run / "metrics.jsonl").write_text("\n".join(lines))
    fig, n = report.log_curves_figure(run / "metrics.jsonl")
    assert n == last
    loss, evals = (ax.lines[0].get_xdata() for ax in fig.axes if ax.get_visible())
    assert loss[0] == 1 and loss[-1] == last and len(loss) <= report.MAX_CURVE_POINTS + 1
    assert np.all(np.diff(loss) > 0)
    assert list(evals) == list(range(1000, last + 1, 1000))
    assert " ".join(fig.get_suptitle().split()).endswith("drawn at 1 point in 8, first to last")


def _video_captions(page: str) -> dict[str, str]:
    """{video path: what its caption says it is}."""
    found = re.findall(r"<figcaption><b class=video-what>([^<]*)</b>: ([^<]*)<br><a href='\./([^']*)'", page)
    return {path: f"{what}: {html.unescape(explanation)}" for what, explanation, path in found}


def test_each_video_in_a_report_says_what_it_shows(run_dir, actions_json, joint_chunk, monkeypatch):
    """The report captioned rollout.mp4 with its file name only: nothing said the clip was imagined by the model, not
    recorded (the animation's own caption did), nor which videos were simulated."""
    from worldpolicy.viz import video as viz_video
    main(["viz", str(run_dir)])
    (run_dir / "videos").mkdir()
    clip = np.zeros((3, 32, 32, 3), np.uint8)
    write_video(run_dir / "videos" / "episode_0003.mp4", clip, 15)
    write_video(run_dir / "phone.mp4", clip, 15)
    (run_dir / "dream_partial").mkdir()  # what a dream killed outright leaves: worldpolicy wrote it, imagined
    write_video(run_dir / "dream_partial" / "chunk-0000.mp4", clip, 15)
    captions = _video_captions(report.build_report_html(run_dir))
    assert captions["dream_partial/chunk-0000.mp4"].startswith("dreamed chunk: one chunk the world model imagined")
    assert captions["rollout.mp4"].startswith("imagined video: imagined by the model: the future it predicts from the "
                                              "observation (frame 0) and the prompt, not recorded")
    assert captions["plots/animation.mp4"].startswith("action animation: the action plot with a playhead")
    assert captions["videos/episode_0003.mp4"].startswith("simulated episode: the simulator's cameras")
    assert "(model: imagined)" in captions["videos/episode_0003.mp4"]
    assert captions["phone.mp4"] == ("video: not a file worldpolicy writes: whether it is recorded, simulated or "
                                     "imagined is not known")
    # forward dynamics imagines the future of the actions it was given, not of the prompt alone
    (run_dir / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk, mode="forward_dynamics")))
    captions = _video_captions(report.build_report_html(run_dir))
    assert captions["rollout.mp4"].startswith("imagined video: imagined by the model: the future it predicts from the "
                                              "observation (frame 0) and the actions it was given, not recorded")
    # inverse dynamics is given every frame: its rollout.mp4 is them re-decoded, in the report and the animation
    (run_dir / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk, mode="inverse_dynamics")))
    captions = _video_captions(report.build_report_html(run_dir))
    assert captions["rollout.mp4"].startswith("re-decoded input video: the frames the model was given")
    labels = []
    monkeypatch.setattr(viz_video, "animate_actions", lambda *a, **k: labels.append(k["video_label"]) or a[4])
    main(["viz", str(run_dir)])
    main(["viz", str(run_dir), "--video", str(run_dir / "phone.mp4")])
    # a recording of the robot is said to be one: "video" beside a chunk read as the model's
    main(["viz", str(run_dir), "--video", str(run_dir / "phone.mp4"), "--video-label", "real robot (phone)"])
    assert labels == ["re-decoded input video", "video", "real robot (phone)"]
    assert main(["viz", str(run_dir), "--video-label", " "]) == 2 and labels == ["re-decoded input video", "video",
                                                                                  "real robot (phone)"]
    # a dream's clip: one word for it in the animation and on the page (`describe_rollout_video(dream=True)`)
    doc = actions_json("droid", joint_chunk, mode="forward_dynamics")
    doc["settings"]["command"] = "dream"
    (run_dir / "actions.json").write_text(json.dumps(doc))
    (run_dir / "settings.json").write_text(json.dumps({"command": "dream"}))
    main(["viz", str(run_dir)])
    assert labels[-1] == "dreamed video"
    assert _video_captions(report.build_report_html(run_dir))["rollout.mp4"].startswith(
        "dreamed video: imagined by the world model chunk after chunk")


def test_inverse_dynamics_rows_past_the_clip_are_marked_in_the_report(tmp_path, joint_chunk, actions_json, monkeypatch):
    """The action table showed every row alike, though settings.real_rows said the last ones explain no frame."""
    doc = actions_json("droid", joint_chunk, mode="inverse_dynamics")
    doc["settings"]["real_rows"] = 29
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    page = report.build_report_html(tmp_path)
    rows = re.findall(r"<tr( class=padded)?><td>(\d+)</td>", page.split("id=actions-table>")[1])
    assert [int(step) for padded, step in rows if padded] == [29, 30, 31]
    assert len(rows) == 32
    assert "<th>joint_0 [rad]</th>" in page and "<th>gripper</th>" in page  # a unitless column: no "[1]"
    assert "rows 29-31: past the clip&#x27;s end (its last frame repeated). The clip had 30 frames" in page
    assert "<b>rows from the clip</b><span>29 of 32</span>" in page
    doc["mode"] = "policy"
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    page = report.build_report_html(tmp_path)
    assert "class=padded" not in page and "rows from the clip" not in page
    # viz's animation hatches them too
    from worldpolicy.viz import video as viz_video
    doc["mode"] = "inverse_dynamics"
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    frames, _ = viz_video.animation_frames(joint_chunk, doc["columns"], doc["units"], 15.0, "gripper", real_rows=29)
    plain, _ = viz_video.animation_frames(joint_chunk, doc["columns"], doc["units"], 15.0, "gripper")
    assert frames.shape == plain.shape and not np.array_equal(frames[0], plain[0])
    asked = []
    monkeypatch.setattr(viz_video, "animate_actions", lambda *a, **k: asked.append(k["real_rows"]) or a[4])
    main(["viz", str(tmp_path)])
    assert asked == [29]


def test_the_action_table_of_a_model_space_head_is_not_called_physical(tmp_path, pose_chunk, actions_json):
    """fractal's normalised actions were headed "Actions (physical units)"."""
    model_space = "Actions (all dims in model space (normalized, about [-1, 1]), not physical units)"
    for key, heading in (("fractal", model_space), ("bridge", "Actions (physical units)")):
        run = tmp_path / key
        run.mkdir()
        (run / "actions.json").write_text(json.dumps(actions_json(key, pose_chunk)))
        html = (report.write_report(run)).read_text()
        assert f"<h2>{heading}</h2>" in html


def test_a_run_that_decoded_no_video_says_so_in_its_summary(tmp_path, joint_chunk, actions_json):
    """A policy run without --decode-video showed the card "video frames: None"."""
    run = tmp_path / "run"
    run.mkdir()
    doc = dict(actions_json("droid", joint_chunk), video_frames=None)
    (run / "actions.json").write_text(json.dumps(doc))
    text = _parse(report.write_report(run)).text
    assert "video framesnone decoded" in text and "None" not in text
    doc["video_frames"] = 9
    (run / "actions.json").write_text(json.dumps(doc))
    assert "video frames9" in _parse(report.write_report(run)).text


def test_a_field_logged_once_is_a_point_not_a_constant(tmp_path):
    """A 2-step run's single evaluation and an objective drawn at one step were named "constant" in the heading, as
    if logged every step with one value; each is a panel with its one point."""
    lines = [{"step": 1, "loss": 2.0, "world_size": 1}, {"step": 2, "loss": 1.0, "world_size": 1,
                                                          "loss_action_inverse_dynamics": 3.0},
             {"step": 2, "eval_success_rate": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl")
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    assert "loss_action_inverse_dynamics" in titles and "eval_success_rate" in titles
    assert fig.get_suptitle().endswith("3 records; constant: world_size = 1")


def test_per_column_curves_share_a_panel_per_unit_and_the_headline_says_its_scale(tmp_path):
    """`val/action_mae/<column>` in metres and unit-free on one axis drew the rotations flat under the metres (and the
    legend over them): with the run's units a panel per unit; without them (a log alone) one panel. The unit-free
    headline `val/action_mae` says on which scale it is."""
    lines = [{"step": s, "val/action_mae": 0.1 / (s + 1), "val/action_mae/tx": 0.004, "val/action_mae/ty": 0.003 + s,
              "val/action_mae/r0": 0.0006, "val/action_mae/grasp": 1e-8} for s in (0, 5)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    units = {"tx": "m", "ty": "m", "r0": "1", "grasp": "1"}
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl", units)
    panels = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    assert list(panels) == ["val/action_mae · unit-free: MAE on the model's normalised action scale, mean over columns",
                            "val/action_mae/<name>", "val/action_mae/<name> [m]"]
    assert [line.get_label() for line in panels["val/action_mae/<name> [m]"].lines] == ["tx", "ty"]
    assert [line.get_label() for line in panels["val/action_mae/<name>"].lines] == ["grasp", "r0"]
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl")
    named = [ax for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left") == "val/action_mae/<name>"]
    assert [line.get_label() for line in named[0].lines] == ["grasp", "r0", "tx", "ty"]


def test_a_mixtures_per_source_curves_share_a_panel_apart_from_the_columns(tmp_path):
    """`val/action_mae/source_<i>` (a mixture source's normalised error) is not a column: unit-free columns and the
    sources on one panel mixed a gripper's physical error with the sources' normalised ones."""
    lines = [{"step": s, "val/loss": 0.2, "val/loss/source_0": 0.1 + 0.01 * s, "val/loss/source_1": 0.3,
              "val/action_mae": 0.1 + s, "val/action_mae/grasp": 0.2 * s, "val/action_mae/source_0": 0.05 + s,
              "val/action_mae/source_1": 0.15} for s in (0, 5)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl", {"grasp": "1"})
    panels = {ax.get_title(loc="left").split(" · ")[0]: ax for ax in fig.axes if ax.get_visible()}
    assert {"val/action_mae/<name>", "val/action_mae/source_<i>", "val/loss/source_<i>"} <= set(panels)
    assert [line.get_label() for line in panels["val/action_mae/<name>"].lines] == ["grasp"]
    assert [line.get_label() for line in panels["val/action_mae/source_<i>"].lines] == ["source_0", "source_1"]
    assert [line.get_label() for line in panels["val/loss/source_<i>"].lines] == ["source_0", "source_1"]


def test_a_source_field_is_read_back_as_its_index_and_a_column_is_not():
    """What a training run logs for a mixture source (`source_metric`) is read back by the one pattern the report and
    the training page group it by (`source_index`); an action column named alike is not taken for a source."""
    field = report.source_metric("val/action_mae", 12)
    assert field == "val/action_mae/source_12"
    assert report.source_index(field.removeprefix("val/action_mae/")) == 12
    assert [report.source_index(name) for name in ("source", "source_", "source_x", "my_source_1", "grasp")] == \
        [None] * 5


def test_per_column_curves_are_drawn_in_the_colour_blind_safe_palette(tmp_path):
    """A joint layout's `val/action_mae/<column>` lines took matplotlib's default cycle, whose red and green (joint_2,
    joint_3) are one olive to red-green colour-blind readers; they take the joints' Okabe-Ito colours, as joints.png."""
    from matplotlib.colors import to_hex

    from worldpolicy.viz.plots import SERIES_COLORS

    names = [f"joint_{i}" for i in range(len(SERIES_COLORS) + 1)]
    lines = [{"step": s, "val/action_mae": 0.5, **{f"val/action_mae/{n}": 0.1 * i + s for i, n in enumerate(names)}}
             for s in (0, 5)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl", dict.fromkeys(names, "rad"))
    panel = next(ax for ax in fig.axes if ax.get_title(loc="left") == "val/action_mae/<name> [rad]")
    assert [to_hex(line.get_color()) for line in panel.lines] == [*SERIES_COLORS, SERIES_COLORS[0]]
    assert [line.get_linestyle() for line in panel.lines] == ["-"] * len(SERIES_COLORS) + ["--"]  # past 7: dashed


def test_a_panels_legend_covers_none_of_its_curves(tmp_path):
    """At loc "best", a held-out panel whose curves zigzag across the whole of it ("training", "val/loss (held out)")
    got its legend over them, as loss_video_forward_dynamics' was in a 12-step run's page; per-column panels too. The
    legend sits in room made above every point drawn, on a linear and a log axis alike."""
    lines = [{"step": s, "loss": 1.0 + s % 2, "loss_action": 1.0 + 99.0 * (s % 2), "val/loss": 2.0 - s % 2,
              "val/loss_action": 100.0 - 99.0 * (s % 2), "val/action_mae": 1.0 + s,
              **{f"val/action_mae/j{i}": 1.0 + (s + i) % 2 for i in range(6)}}
             for s in range(12)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl")
    fig.canvas.draw()
    panels = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    assert {"loss", "loss_action (log scale)", "val/action_mae/<name>"} <= set(panels)
    for title in ("loss", "loss_action (log scale)", "val/action_mae/<name>"):
        ax = panels[title]
        box = ax.get_legend().get_window_extent()
        points = np.concatenate([ax.transData.transform(line.get_xydata()) for line in ax.lines])
        assert len(points) >= 24 and points[:, 1].max() < box.y0, title  # above the lines, not between them
        assert box.y1 <= ax.get_window_extent().y1  # inside the panel, at its top


def test_a_chunk_with_nan_names_where_in_viz_and_on_its_page(tmp_path, joint_chunk, actions_json, capsys):
    """`viz` of a run whose model returned NaN said only "actions contain NaN or inf values", and its page was a
    table with a "nan" among 256 cells and no word of why there were no plots."""
    run = tmp_path / "run"
    run.mkdir()
    doc = actions_json("droid", joint_chunk)
    doc["actions"][3][1] = doc["actions"][5][1] = doc["actions"][7][6] = None  # how actions.json stores NaN
    (run / "actions.json").write_text(json.dumps(doc))
    assert main(["viz", str(run)]) == 2
    err = capsys.readouterr().err
    assert (f"actions file {str(run / 'actions.json')!r}: actions contain NaN or inf values: 3 of 256 values, in 2 "
            "columns (joint_1, joint_6), first at row 3, column 'joint_1'") in err
    assert not (run / "plots").exists()
    page = report.write_report(run).read_text()
    note = re.search(r"<p class=warn id=nonfinite-note>(.*?)</p>", page)
    assert note and "3 of 256 values" in note.group(1) and "no plots can be drawn" in note.group(1)
    assert page.count("<td class=bad>nan</td>") == 3


def test_a_success_rate_curve_spans_zero_to_one(tmp_path):
    """Autoscaled, evaluations at 0.25 and 0.5 filled the panel bottom to top, as if success had gone from none to
    all; a rate is read against its whole range."""
    lines = [{"step": s, "loss": 10.0 - s} for s in range(1, 9)]
    lines += [{"step": 4, "eval_success_rate": 0.25}, {"step": 8, "eval_success_rate": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl")
    axes = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    low, high = axes["eval_success_rate"].get_ylim()
    assert low <= 0 and 1 <= high < 1.1
    assert axes["loss"].get_ylim()[1] > 9  # the other panels keep their own range


def test_nan_in_a_training_log_is_named_and_marked_not_a_curve_that_just_ends(tmp_path):
    """A log whose loss went NaN at step 30 drew a curve ending at step 29, as if the run had stopped there; an
    `Infinity` among the values also decided the log scale. Each field names its NaN/inf points, marks them at their
    steps, and scales on its finite values."""
    lines = [{"step": s, "loss": 100.0 / s if s < 30 else float("nan") if s < 35 else float("inf"), "lr": 1e-4}
             for s in range(1, 40)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))  # NaN, Infinity: as json
    fig, _ = report.log_curves_figure(tmp_path / "metrics.jsonl")
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_title(loc="left") == "loss · NaN or inf at 10 points, first at step 30"  # 100/29 < 30x: linear
    marks = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == list(range(30, 40))
    assert ax.get_xlim()[1] >= 39


def test_a_predict_runs_summary_names_its_checkpoint(tmp_path, joint_chunk, actions_json):
    """Which checkpoint made the chunk was only in the settings at the page's foot."""
    run = tmp_path / "run"
    run.mkdir()
    doc = actions_json("droid", joint_chunk)
    doc["settings"]["checkpoint"] = "runs/<b>lora/checkpoints/step-0000800"
    (run / "actions.json").write_text(json.dumps(doc))
    raw = report.write_report(run).read_text()
    assert "<b>checkpoint</b><span>runs/&lt;b&gt;lora/checkpoints/step-0000800</span>" in raw


def test_report_server_refuses_links_out_of_the_run_folder(tmp_path):
    """http.server followed a symbolic link wherever it pointed: a run folder holding `leak -> /home/me` served the
    home folder. A link that stays inside the folder is still served."""
    import threading
    import urllib.error
    import urllib.request

    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    (outside / "folder" / "index.html").write_text("secret page")
    run = tmp_path / "run"
    (run / "plots").mkdir(parents=True)
    (run / "plots" / "a.txt").write_text("inside")
    (run / "inner").mkdir()
    (run / "leak.txt").symlink_to(outside / "secret.txt")
    (run / "leak").symlink_to(outside / "folder")
    (run / "inner" / "index.html").symlink_to(outside / "secret.txt")  # a folder's page, opened without its name
    (run / "same.txt").symlink_to(run / "plots" / "a.txt")
    server = report.report_server(run, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/{path}", timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, ""

    try:
        assert get("plots/a.txt") == (200, "inside") and get("same.txt") == (200, "inside")
        for path in ("leak.txt", "leak/", "leak/index.html", "inner/", "plots/../leak.txt"):
            assert get(path) == (403, ""), path
        assert get("../outside/secret.txt")[0] == 404  # http.server's own rule: `..` stays in the folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("scenes, kind, card, note", [
    ({"task": "reach", "source": "its dataset data/reach", "recorded_seeds": [0, 900], "seeds": [7, 8]}, "checkpoint",
     "2 of 2 are training scenes", ("Training scenes: 2 of the 2 episodes (seeds 7, 8) are scenes the checkpoint was "
     "trained on (its dataset data/reach: reach seeds 0..900): the success rate says how well it fits its training "
     "data, not how it does on new scenes.")),
    ({"task": "reach", "source": "its dataset data/reach", "recorded_seeds": [0, 900], "seeds": []}, "checkpoint",
     "held out", ("Held out: none of these 2 episodes is a scene the checkpoint was trained on (its dataset "
     "data/reach: reach seeds 0..900).")),
    (None, "checkpoint", "not known", ("Held out or not: not known (the checkpoint's training data does not say which "
     "scenes it recorded): the success rate may include scenes the policy was trained on.")),
    (None, "server", "not known", ("Held out or not: not known (its server did not announce its checkpoint's "
     "training scenes: an openpi or older worldpolicy server, or a checkpoint whose training data does not say): the "
     "success rate may include scenes the policy was trained on.")),
    (None, "scripted", None, None),
])
def test_a_sim_runs_success_rate_says_whether_its_scenes_were_held_out(tmp_path, scenes, kind, card, note):
    """report.json records whether the episodes were scenes the checkpoint trained on (`training_scenes`); the page
    showed its success rate alone, so a rate on training scenes read as one on new scenes."""
    episodes = [{"seed": 7, "success": True, "steps": 26}, {"seed": 8, "success": False, "steps": 60}]
    (tmp_path / "report.json").write_text(json.dumps({
        "schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "ckpt", "robot": "panda",
        "strategy": {"kind": "execute"}, "control_hz": 15.0, "successes": 1, "success_rate": 0.5,
        "ci95": [0.094, 0.906], "episodes_requested": 2, "episodes": episodes, "training_scenes": scenes,
        "policy_settings": {"kind": kind}}))
    html = report.write_report(tmp_path).read_text()
    cards = list(re.findall(r"<div class=card><b>([^<]*)</b><span>([^<]*)</span></div>", html))
    names = [name for name, _ in cards]
    assert dict(cards).get("scenes") == card
    if card is not None:
        assert names.index("scenes") == names.index("success rate") + 1  # beside the rate it qualifies
        summary = html[html.index("<section id=summary>"):]
        shown = re.sub(r"<[^>]+>", "", re.search(r"<p class=\w+ id=training-scenes>(.*?)</p>", summary).group(1))
        assert shown == note.replace("'", "&#x27;")
    else:
        assert "id=training-scenes" not in html


def test_the_metrics_table_shows_a_range_as_a_range_and_a_pair_as_two_values(tmp_path):
    """`recorded_seeds` [0, 900] is seeds 0 to 900, `ci95` an interval: "0, 900" read as two seeds."""
    scenes = {"task": "reach", "source": "its dataset data/reach", "recorded_seeds": [0, 900], "seeds": []}
    (tmp_path / "report.json").write_text(json.dumps({
        "schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "ckpt", "robot": "panda",
        "strategy": {"kind": "execute"}, "control_hz": 15.0, "successes": 1, "success_rate": 0.5,
        "ci95": [0.094, 0.906], "episodes_requested": 2, "training_scenes": scenes,
        "episodes": [{"seed": 7, "success": True, "steps": 26}, {"seed": 8, "success": False, "steps": 60}],
        "policy_settings": {"kind": "checkpoint", "image_size": [180, 320]}}))
    html = report.write_report(tmp_path).read_text()
    rows = dict(re.findall(r"<tr><th scope=row class=k>([^<]*)</th><td>([^<]*)</td></tr>", html))
    assert rows["training_scenes.recorded_seeds"] == "0..900" and rows["ci95"] == "0.094..0.906"
    assert rows["policy_settings.image_size"] == "180, 320"


def test_a_sim_report_from_before_training_scenes_were_recorded_says_so(tmp_path):
    """A report.json written before `training_scenes` was recorded has no such key: its page blamed the checkpoint's
    training data, which may well say (a rerun records it)."""
    (tmp_path / "report.json").write_text(json.dumps({
        "schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "ckpt", "robot": "panda",
        "strategy": {"kind": "execute"}, "control_hz": 15.0, "successes": 1, "success_rate": 1.0,
        "ci95": [0.2, 1.0], "episodes_requested": 1, "episodes": [{"seed": 7, "success": True, "steps": 26}],
        "policy_settings": {"kind": "checkpoint"}}))
    html = report.write_report(tmp_path).read_text()
    assert "<div class=card><b>scenes</b><span>not known</span></div>" in html
    assert "not known (the report was written before report.json recorded it)" in html


def test_the_pages_untrained_policies_are_the_sims_versioned_ones():
    """The page says nothing of held-out scenes for the policies that learned none; it names them as report.json's
    `policy_settings.kind` does, without importing the simulator."""
    pytest.importorskip("gymnasium")
    from worldpolicy.sim.tasks import BUILTIN_POLICIES

    assert report._UNTRAINED_POLICIES == BUILTIN_POLICIES


def test_a_whole_trajectorys_page_gives_its_chunks_and_says_its_times_are_summed(tmp_path, joint_chunk, actions_json):
    """A 32-row trajectory rolled out in chunks of 12, 12 and 8: the page had a card and a table column for a whole
    clip's windows but none for a trajectory's chunks, and its stage times, summed over the chunks, read as one
    run's."""
    from worldpolicy.processing.trajectory import TrajectoryChunks

    doc = actions_json("droid", joint_chunk, "forward_dynamics")
    doc["settings"] = {"trajectory": TrajectoryChunks(np.zeros((32, 1)), 12, seed=7).settings(True)}
    doc["timings_s"] = {"text": 0.0, "denoise": 2.0, "total": 1.5}
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    page = report.write_report(tmp_path).read_text()
    cards = dict(re.findall(r"<div class=card><b>([^<]*)</b><span>([^<]*)</span></div>", page))
    # a dream's world model found its prompt encoded (the engine's text cache): its text time is 0, said why
    assert html.unescape(cards["time: text (chunks summed)"]) == "0 s (the prompt's encoding was cached)"
    assert html.unescape(cards["trajectory"]) == ("32 rows in 3 chunks of 12 rows, the last 8; chunks 1-2 start from "
                                                  "the model's own last imagined frame, its last action as the state")
    assert cards["time: denoise (chunks summed)"] == "2.000 s" and cards["time: total"] == "1.500 s"
    assert "clip" not in cards
    assert "chunk" not in cards  # "32 steps" read as one chunk of the model's, beside the card of its 3 chunks
    assert _parse(tmp_path / "index.html").th[:3] == ["step", "t [s]", "chunk"]  # each row's chunk, from 0
    chunk_of = re.findall(r"<tr><td>(\d+)</td><td>[\d.]+</td><td>([^<]*)</td>", page)
    assert [chunk_of[i] for i in (0, 11, 12, 23, 24, 31)] == [("0", "0"), ("11", "0"), ("12", "1"), ("23", "1"),
                                                              ("24", "2"), ("31", "2")]
    doc["settings"] = {"trajectory": TrajectoryChunks(np.zeros((32, 1)), 32, seed=7).settings(False)}  # one chunk
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    cards = dict(re.findall(r"<div class=card><b>([^<]*)</b><span>([^<]*)</span></div>",
                            report.write_report(tmp_path).read_text()))
    assert "trajectory" not in cards and "time: denoise" in cards and "chunk" in cards


def test_a_whole_clips_page_gives_each_rows_clip_frames(tmp_path, joint_chunk, actions_json):
    """A whole clip read at 15 fps from frame 40 of a 30 fps file: the table's step and time did not say which clip
    frames a row explains, nor the summary which frames and windows the run used."""
    doc = actions_json("droid", joint_chunk[:8], "inverse_dynamics")
    doc["settings"] = {"real_rows": 8, "clip": {"start_frame": 40, "frames_used": list(range(40, 57, 2)),
                                                "clip_fps": 30.0, "resampled": True, "window_rows": [4, 4]}}
    doc["timings_s"] = {"denoise": 2.0, "total": 1.5}
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    html = report.write_report(tmp_path).read_text()
    cards = dict(re.findall(r"<div class=card><b>([^<]*)</b><span>([^<]*)</span></div>", html))
    assert cards["clip"] == "clip frames 40..56 (2 windows of 4 rows), resampled from 30 fps"
    assert cards["time: denoise (windows summed)"] == "2.000 s" and cards["time: total"] == "1.500 s"
    page = _parse(tmp_path / "index.html")
    assert page.th[:3] == ["step", "t [s]", "clip frames"]
    rows = re.findall(r"<tr><td>(\d+)</td><td>[\d.]+</td><td>([^<]*)</td>", html)
    assert rows[0] == ("0", "40→42") and rows[-1] == ("7", "54→56")


def test_a_dataset_page_embeds_no_file_outside_its_folder(tmp_path):
    """A dataset shown is redrawn from its dataset_show.json: a clip or plot named there that leads out of the folder
    (`..`, an absolute path) is named in the notes, and its bytes are not put in the page."""
    from worldpolicy.fileio import SHOW_FILE
    from worldpolicy.viz.dataset_page import build_dataset_html

    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"TOPSECRET-BYTES")
    folder = tmp_path / "look"
    folder.mkdir()
    doc = {"schema": "worldpolicy.dataset_show/v1", "root": "ds", "shown": [
        {"episode": 0, "frames": 3, "videos": {"front": "../secret.mp4", "wrist": str(secret)},
         "plots": [{"file": "../secret.mp4", "shows": "action as recorded"}]}]}
    (folder / SHOW_FILE).write_text(json.dumps(doc))
    page = build_dataset_html(folder)
    assert base64.b64encode(b"TOPSECRET-BYTES").decode() not in page
    assert "episode 0: ../secret.mp4 is outside the folder" in page
    assert f"episode 0: {secret} is outside the folder" in page


def test_the_python_snippet_of_the_viz_doc_runs_as_written(tmp_path, monkeypatch, pose_chunk):
    """docs/viz.md's snippet plotted into runs/pick/plots, then reported runs/pick, which held those plots alone and
    was refused: run as written, its last line raised. Its free names (a prediction, a chunk, frames) are given here."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.results import Prediction

    doc = (Path(__file__).resolve().parents[2] / "docs" / "viz.md").read_text()
    block = re.search(r"## Python\n\n```python\n(.*?)```", doc, re.DOTALL)[1]
    e = get_embodiment("droid/relative_pose")
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    monkeypatch.chdir(tmp_path)
    write_video("clip.mp4", frames, fps=15)
    prediction = Prediction(mode="policy", embodiment=e.key, columns=list(e.columns), units=list(e.units),
                            actions=pose_chunk, actions_normalized=np.zeros_like(pose_chunk), fps=e.fps)
    exec(block, {  # noqa: S102 - the documented snippet itself
        "prediction": prediction, "actions": pose_chunk, "actions_mm": pose_chunk * 1000, "fps": e.fps,
        "columns": [*e.columns[:-1], "gripper"], "units": list(e.units), "frames": frames,
        "start_pose": np.eye(4), "arms": np.tile(pose_chunk[:, [0, 9]], 2),
        "arm_columns": ["left_x", "left_grasp", "right_x", "right_grasp"], "arm_units": ["m", "1", "m", "1"],
        "sim_frames": frames, "imagined_frames": frames,
    })
    assert (tmp_path / "runs" / "pick" / "index.html").is_file() and (tmp_path / "figures" / "pick").is_dir()


def test_an_open_loop_evaluation_shows_each_columns_error_in_one_table(tmp_path):
    """`worldpolicy report` of a `dataset eval` folder showed its plots and a file link, not openloop.json's numbers
    (flattened, they would be 40 rows of `mae.tx`)."""
    columns = ["tx", "grasp"]
    (tmp_path / "openloop.json").write_text(json.dumps({
        "settings": {"checkpoint": "shipped", "episodes": [0, 1]}, "columns": columns,
        "units": {"tx": "m", "grasp": "1"}, "chunks": 6, "steps_compared": 22,
        "mae": {"tx": 0.0029, "grasp": 1e-8}, "rmse": {"tx": 0.0037, "grasp": 1.4e-8}, "normalization": "quantile",
        "recorded_std": {"tx": 0.006, "grasp": 0.0}, "mae_normalized": 0.1256,
        "mae_normalized_by_column": {"tx": 0.1256, "grasp": None},
        "horizon": [{"step": 0, "chunks": 6, "mae": {"tx": 0.003, "grasp": 1e-8}}],
        "episodes": [{"episode": 0, "frames": 22, "mae": {"tx": 0.0029, "grasp": 1e-8}}]}))
    html = report.write_report(tmp_path).read_text()
    section = html[html.index("<section id=open-loop>"):]
    section = section[:section.index("</section>")]
    assert "6 chunks, 22 steps compared; normalised MAE 0.1256" in section
    rows = [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", section)[1:]]
    assert rows == [["tx", "m", "0.0029", "0.0037", "0.1256", "0.006"], ["grasp", "-", "1e-08", "1.4e-08", "-", "0"]]
    metrics = html[html.index("<section id=metrics>"):]
    assert "settings.checkpoint" in metrics and "mae.tx" not in metrics and "id='records-horizon'" not in html
    assert "id=training-scenes" not in html  # not a sim recording's episodes (`training_scenes` not recorded)


def test_a_forward_dynamics_evaluation_shows_its_frame_errors_not_an_empty_column_table(tmp_path):
    """openloop.json of `dataset eval --mode forward_dynamics` holds PSNR and SSIM per camera, no action columns: its
    numbers are the metrics table's and its horizon a records table, with no open-loop section of no columns."""
    (tmp_path / "openloop.json").write_text(json.dumps({
        "schema": "worldpolicy.openloop/v2", "mode": "forward_dynamics", "settings": {"checkpoint": "shipped"},
        "cameras": ["front"], "chunks": 2, "frames_compared": 8, "psnr": {"front": 21.5}, "ssim": {"front": 0.61},
        "horizon": [{"frames_ahead": 1, "chunks": 2, "psnr": {"front": 24.0}, "ssim": {"front": 0.7}},
                    {"frames_ahead": 2, "chunks": 2, "psnr": {"front": 19.0}, "ssim": {"front": 0.5}}]}))
    html = report.write_report(tmp_path).read_text()
    assert "<section id=open-loop>" not in html
    metrics = html[html.index("<section id=metrics>"):]
    assert "psnr.front" in metrics and "ssim.front" in metrics and "id='records-horizon'" in html


def test_an_open_loop_evaluation_of_a_newer_version_is_said_not_shown_as_read(tmp_path):
    """openloop.json a later worldpolicy wrote (`worldpolicy.openloop/v3`) was shown as if this one read it: the page
    says why it is not, naming the file, its version and the one this worldpolicy reads (`fileio.OPENLOOP_SCHEMA`)."""
    from worldpolicy.fileio import OPENLOOP_SCHEMA

    kind, _, version = OPENLOOP_SCHEMA.rpartition("/v")
    newer = f"{kind}/v{int(version) + 1}"
    (tmp_path / "openloop.json").write_text(json.dumps({
        "schema": newer, "mode": "policy", "columns": ["x"], "units": {"x": "m"}, "mae": {"x": 0.1}}))
    page = _parse(report.write_report(tmp_path))
    said = (f"openloop.json could not be read: {str(tmp_path / 'openloop.json')!r}: written by a newer worldpolicy "
            f"(schema {newer!r}; this one reads {OPENLOOP_SCHEMA!r} and older): upgrade worldpolicy to read it")
    assert page.sections[0] == "notes" and said in page.text
    assert "open-loop" not in page.sections and "metrics" not in page.sections


@pytest.mark.parametrize(("name", "schema", "doc"), [
    ("report.json", "SIM_REPORT_SCHEMA", {"success_rate": 0.5, "episodes": [{"seed": 0, "success": True}]}),
    ("dream.json", "DREAM_SCHEMA", {"chunks_requested": 2, "chunks_done": 2, "chunks": [{"chunk": 0}]}),
])
def test_a_sim_report_or_dream_of_a_newer_version_is_said_not_shown_as_read(tmp_path, name, schema, doc):
    """report.json and dream.json are versioned as openloop.json is (`viz.report.VERSIONED`): one a later worldpolicy
    wrote is a note naming the file, its version and the one this worldpolicy reads; none of its numbers are shown
    (report.json of v2 was shown as a sim run's summary, its episodes captioning the videos)."""
    import worldpolicy.fileio

    schema = getattr(worldpolicy.fileio, schema)
    kind, _, version = schema.rpartition("/v")
    newer = f"{kind}/v{int(version) + 1}"
    (tmp_path / name).write_text(json.dumps({"schema": newer, **doc}))
    page = _parse(report.write_report(tmp_path))
    said = (f"{name} could not be read: {str(tmp_path / name)!r}: written by a newer worldpolicy (schema {newer!r}; "
            f"this one reads {schema!r} and older): upgrade worldpolicy to read it")
    assert page.sections[0] == "notes" and said in page.text
    assert "summary" not in page.sections and "metrics" not in page.sections
    assert not any(s.startswith("records-") for s in page.sections if s)
    (tmp_path / name).write_text(json.dumps({"schema": schema, **doc}))  # this version's is read
    assert "metrics" in _parse(report.write_report(tmp_path)).sections


@pytest.mark.parametrize(("seeds", "said"), [
    ([6], ("Training scenes: 1 of the 2 episodes (seed 6) are scenes the checkpoint was trained on (its dataset "
           "data/reach: reach seeds 5..6): the error says how well it imitates its training data, not how it does "
           "on new scenes.")),
    ([], ("Held out: none of these 2 episodes is a scene the checkpoint was trained on (its dataset data/reach: "
          "reach seeds 5..6).")),
])
def test_an_open_loop_evaluation_says_whether_its_episodes_are_training_scenes(tmp_path, seeds, said):
    """openloop.json's `training_scenes` (`data.openloop.plan_training_scenes`) on the page, as a sim run's is."""
    (tmp_path / "openloop.json").write_text(json.dumps({
        "columns": ["x"], "units": {"x": "m"}, "mae": {"x": 0.1}, "episodes": [{"episode": 0}, {"episode": 1}],
        "training_scenes": {"task": "reach", "source": "its dataset data/reach", "recorded_seeds": [5, 6],
                            "seeds": seeds}}))
    html = report.write_report(tmp_path).read_text()
    section = html[html.index("<section id=open-loop>"):]
    note = re.search(r"<p class=(\w+) id=training-scenes>(.*?)</p>", section[:section.index("</section>")])
    assert (note.group(1), re.sub(r"<[^>]+>", "", note.group(2))) == ("warn" if seeds else "muted", said)


def test_report_help_names_every_kind_of_run_it_reports_on(capsys, monkeypatch):
    """`worldpolicy report --help` lists the runs it takes from `fileio.FOLDER_KINDS`, not a list of its own that
    left out a comparison of sim runs, an open-loop evaluation, a dream..."""
    from worldpolicy.fileio import FOLDER_KINDS

    monkeypatch.setenv("COLUMNS", "1000")  # one line: a kind's words not wrapped apart
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    shown = capsys.readouterr().out
    for kind in FOLDER_KINDS:
        assert (kind.what in shown) == (kind.writer is not None), kind.what


def test_viz_names_the_input_that_does_not_exist(run_dir, tmp_path, capsys):
    """`viz RUN --video missing.mp4` said "video file '...' does not exist", naming no flag; `viz missing_run` said it
    "is neither an actions file nor a run directory", as though it were something else."""
    missing = tmp_path / "nope.mp4"
    assert main(["viz", str(run_dir), "--video", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"error: --video: {str(missing)!r} does not exist; accepted: a video file" in err
    assert not (run_dir / "plots").exists()
    gone = tmp_path / "no_run"
    assert main(["viz", str(gone)]) == 2
    err = capsys.readouterr().err
    assert f"error: PATH: {str(gone)!r} does not exist; accepted: an actions file" in err


@pytest.mark.parametrize("writer", ["save", "demo"])
def test_ctrl_c_while_a_predict_run_is_written_waits_for_its_last_file(tmp_path, monkeypatch, writer):
    """Ctrl-C while `predict` drew its plots (seconds, into a folder holding an earlier run) left the new actions.json
    beside the earlier run's page, its plots removed; now the run is written whole, then it stops. So are the demo's
    runs, which a rerun writes over the last demo's (its --out's default)."""
    import signal

    from worldpolicy.commands import _write_demo_run
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.results import Prediction
    from worldpolicy.viz import plots

    e = get_embodiment("droid/relative_pose")

    def write(seed):
        chunk = np.random.default_rng(seed).normal(size=(8, len(e.columns))) * 0.01
        prediction = Prediction(mode="policy", embodiment=e.key, columns=list(e.columns), units=list(e.units),
                                actions=chunk, actions_normalized=chunk, fps=e.fps, settings={"seed": seed},
                                timings={"total": 0.1})
        if writer == "save":
            prediction.save(tmp_path / "run")
        else:
            _write_demo_run(prediction, tmp_path / "run")

    write(0)
    drawn = plots.plot_prediction

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return drawn(*args, **kwargs)

    monkeypatch.setattr("worldpolicy.viz.run.plot_prediction", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(1)
    assert json.loads((tmp_path / "run" / "actions.json").read_text())["settings"]["seed"] == 1
    page = (tmp_path / "run" / "index.html").read_text()
    assert (tmp_path / "run" / "plots" / "actions.png").is_file() and "plots/actions.png" in page
    assert (tmp_path / "run" / "index.html").stat().st_mtime >= (tmp_path / "run" / "actions.json").stat().st_mtime


def test_a_noisy_training_loss_is_drawn_under_its_running_mean(tmp_path):
    """A diffusion loss draws a noise level per step: its logged points jumped between 1 and 70 (the loss panel of a
    real run), hiding whether it fell. A loss of SMOOTH_MIN_POINTS points or more is now drawn faint under its
    trailing running mean, as its title says; other fields, a short log and a diverged run keep their points."""
    run = tmp_path / "noisy"
    run.mkdir()
    loss = [(60.0 if s % 2 else 1.0) / (1 + s / 50) for s in range(1, 201)]
    lines = [{"step": s, "loss": v, "grad_norm": v} for s, v in zip(range(1, 201), loss)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    fig, _ = report.log_curves_figure(run / "metrics.jsonl")
    panels = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"loss · line: mean of the last 10 points (log scale)", "grad_norm"}
    raw, mean = panels["loss · line: mean of the last 10 points (log scale)"].get_lines()
    assert raw.get_alpha() < 1 and list(raw.get_ydata()) == loss
    assert mean.get_ydata()[0] == loss[0] and mean.get_ydata()[-1] == pytest.approx(sum(loss[-10:]) / 10)
    assert len(panels["grad_norm"].get_lines()) == 1
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines[:19]))
    fig, _ = report.log_curves_figure(run / "metrics.jsonl")
    assert [len(ax.get_lines()) for ax in fig.axes if ax.get_visible()] == [1, 1]


def test_a_runs_page_says_which_part_of_the_composed_rollout_video_is_which_camera(tmp_path, joint_chunk,
                                                                                   actions_json):
    """The page shows rollout.mp4 as the model decoded it, its embodiment's cameras composed into one picture: its
    caption now says where each camera is, so a newcomer can tell them apart. One image given says nothing of parts."""

    from worldpolicy.processing.video import write_video
    from worldpolicy.viz.report import write_report
    from worldpolicy.viz.run import OBSERVATION_FOLDER

    run = tmp_path / "run"
    (run / OBSERVATION_FOLDER).mkdir(parents=True)
    (run / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk)))
    write_video(run / "rollout.mp4", np.full((3, 264, 320, 3), 128, np.uint8), 15)
    said = ("its cameras, composed as the model sees them: top: wrist_image_left, bottom left: exterior_image_1_left, "
            "bottom right: exterior_image_2_left")
    Image.new("RGB", (32, 32)).save(run / OBSERVATION_FOLDER / "image.png")
    assert "composed as the model sees them" not in write_report(run).read_text()
    (run / OBSERVATION_FOLDER / "image.png").unlink()
    for name in ("wrist_image_left", "exterior_image_1_left", "exterior_image_2_left"):
        Image.new("RGB", (32, 32)).save(run / OBSERVATION_FOLDER / f"{name}.png")
    assert said in write_report(run).read_text()


@pytest.mark.parametrize("settings", [["x"], "x", {"inputs": [1, 2]}])
def test_a_runs_page_whose_settings_are_no_table_shows_its_rollout_video(tmp_path, joint_chunk, actions_json,
                                                                          settings):
    """Where each camera is in rollout.mp4 was looked up with `settings.get`: an actions.json whose settings are a list
    or a string (written by hand or another tool), or whose `inputs` are not flags, gave a traceback, not a page."""
    from worldpolicy.processing.video import write_video
    from worldpolicy.viz.report import write_report

    doc = actions_json("droid", joint_chunk)  # no observation images: the `--camera` inputs are looked for
    doc["settings"] = settings
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    write_video(tmp_path / "rollout.mp4", np.full((3, 64, 64, 3), 128, np.uint8), 15)
    page = write_report(tmp_path).read_text()
    assert "rollout.mp4" in page and "composed as the model sees them" not in page


class _Style(html.parser.HTMLParser):
    """The page's own stylesheet, as `{(media, selector): {property: value}}` (media "" outside an @media block)."""

    def __init__(self):
        super().__init__()
        self._in, self.css = False, ""

    def handle_starttag(self, tag, attrs):
        self._in = tag == "style"

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.css += data

    def rules(self) -> dict:
        out, media = {}, ""
        for m in re.finditer(r"(@media[^{]*)\{|([^{}]+)\{([^{}]*)\}|\}", self.css):
            if m.group(1):
                media = m.group(1).strip()
            elif m.group(2):
                decls = dict(d.split(":", 1) for d in m.group(3).split(";") if ":" in d)
                for selector in m.group(2).split(","):
                    out.setdefault((media, selector.strip()), {}).update(decls)
            else:
                media = ""
        return out


def _contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two #rgb / #rrggbb colours."""
    def luminance(colour):
        h = colour.lstrip("#")
        h = "".join(c * 2 for c in h) if len(h) == 3 else h
        c = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_pages_text_colours_meet_wcag_aa_and_the_page_prints_readably(tmp_path, joint_chunk, actions_json):
    """Grey text (padded rows 2.8:1 on their hatch, muted notes) fell short of 4.5:1; the hatched rows were told apart
    by a background alone, which print and high-contrast modes drop; and printed, the header's white title sat on a
    background the browser leaves out (white on white) while settings were cut at the <pre>'s scroll height."""
    doc = actions_json("droid", joint_chunk, mode="inverse_dynamics")
    doc["settings"]["real_rows"] = 29
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    style = _Style()
    style.feed(report.build_report_html(tmp_path))
    rules = style.rules()
    screen = {sel: d for (media, sel), d in rules.items() if not media}
    light = {d["background"] for d in screen.values() if re.fullmatch(r"#[0-9a-f]{3,6}", d.get("background", ""))}
    light |= set(re.findall(r"#[0-9a-f]{6}", screen["tr.padded td"]["background"]))
    light -= {screen["header"]["background"]}
    assert {"#fff", "#f6f7f9"} <= light
    for selector, decls in screen.items():
        if "color" not in decls:
            continue
        behind = [screen["header"]["background"]] if selector.startswith("header") else sorted(light)
        for bg in behind:
            assert _contrast(decls["color"], bg) >= 4.5, (selector, decls["color"], bg)
    assert screen["tr.padded td"].get("font-style") == "italic"  # not colour or a background alone
    assert "Hatched, in italics:" in report.build_report_html(tmp_path)
    printed = {sel: d for (media, sel), d in rules.items() if media == "@media print"}
    assert _contrast(printed["header"]["color"], "#fff") >= 4.5 and printed["header"]["background"] == "none"
    assert _contrast(printed["header p"]["color"], "#fff") >= 4.5
    assert printed["pre"]["max-height"] == "none" and printed["pre"]["overflow"] == "visible"


class _Figures(html.parser.HTMLParser):
    """Each <img>'s alt text and the text of the figcaption after it."""

    def __init__(self):
        super().__init__()
        self.alts, self.captions, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))
        elif tag == "figcaption" and len(self.captions) < len(self.alts):  # an image's, not a video's
            self._in = True
            self.captions.append("")

    def handle_endtag(self, tag):
        self._in = self._in and tag != "figcaption"

    def handle_data(self, data):
        if self._in:
            self.captions[-1] += data


def test_each_image_on_a_page_says_what_its_figure_shows_not_its_file_name(run_dir, tmp_path):
    """A screen reader read "plots/actions.png" for a plot, "metrics.jsonl curves" for the training curves."""
    main(["viz", str(run_dir), "--no-animation"])
    (run_dir / "observation").mkdir()
    Image.new("RGB", (8, 8)).save(run_dir / "observation" / "wrist.png")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)))
    figures = _Figures()
    figures.feed(report.build_report_html(run_dir))
    assert len(figures.alts) == 4
    for alt, caption in zip(figures.alts, figures.captions):
        assert alt and not re.fullmatch(r"\S+(\.png| curves)", alt), alt  # a file's name said nothing of it
        assert caption.startswith(alt)  # the caption says it too, for sighted readers and in print
    assert report.describe_image("plots/actions.png") in figures.alts
    assert report.describe_image("observation/wrist.png") in figures.alts
    assert "each field metrics.jsonl logged, over its steps (3 records)" in figures.alts
    assert report.describe_image("plots/ee_path_left.png") != report.describe_image("other.png")


class _Cells(html.parser.HTMLParser):
    """Each table row's cells as (tag, scope) pairs, by the table's class."""

    def __init__(self):
        super().__init__()
        self.tables, self._cls = {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._cls = a.get("class") or ""
            self.tables.setdefault(self._cls, [])
        elif tag == "tr" and self._cls is not None:
            self.tables[self._cls].append([])
        elif tag in ("td", "th") and self._cls is not None:
            self.tables[self._cls][-1].append((tag, a.get("scope")))


def test_a_name_value_tables_names_are_row_headers_a_screen_reader_says_with_each_value(tmp_path):
    """The Metrics, training and provenance tables (`_kv_table`) were rows of two plain cells: a screen reader moving
    down the value column heard "0.5" with nothing to say it was the success rate."""
    (tmp_path / "metrics.json").write_text(json.dumps({"success_rate": 0.5, "loss": {"mean": 1.0, "max": 2.0}}))
    cells = _Cells()
    cells.feed(report.build_report_html(tmp_path))
    rows = cells.tables["metrics"]
    assert len(rows) == 3
    assert all(row == [("th", "row"), ("td", None)] for row in rows), rows


class _Nav(html.parser.HTMLParser):
    """The page's <nav> links (href, text) and the ids of its sections."""

    def __init__(self):
        super().__init__()
        self.links, self.ids, self._in_nav, self._href = [], [], False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._in_nav = self._in_nav or tag == "nav"
        if tag == "a" and self._in_nav:
            self._href = a["href"]
            self.links.append([a["href"], ""])
        elif tag == "section":
            self.ids.append(a["id"])

    def handle_endtag(self, tag):
        self._in_nav = self._in_nav and tag != "nav"
        self._href = None if tag == "a" else self._href

    def handle_data(self, data):
        if self._href is not None:
            self.links[-1][1] += data


def test_a_page_opens_with_links_to_its_sections_by_their_headings(run_dir):
    """A keyboard or screen reader user went through every video player and table (a sim run's hundreds of episodes)
    to reach the Settings or Files; the page now lists its sections first, each linked by its heading."""
    main(["viz", str(run_dir), "--no-animation"])
    (run_dir / "metrics.json").write_text(json.dumps({"episodes": [{"seed": 1, "success": True}]}))
    nav = _Nav()
    nav.feed(report.build_report_html(run_dir))
    assert [href for href, _ in nav.links] == [f"#{i}" for i in nav.ids]  # 'records-episodes' was quoted
    assert "#records-episodes" in dict(nav.links) and dict(nav.links)["#settings"] == "Settings"
    assert dict(nav.links)["#actions"].startswith("Actions (")


def test_rates_are_shown_alike_on_every_page():
    """The compare and sweep pages show a rate and its interval through `report._pct`/`_pct_range`: a bool (a flag
    misread as a rate) or a missing end is "-", not "100.0 %"."""
    assert report._pct(0.25) == "25.0 %" and report._pct(1) == "100.0 %"
    assert report._pct(True) == "-" and report._pct(None) == "-" and report._pct("0.5") == "-"
    assert report._pct_range(0.125, 0.4) == "12.5-40.0 %"
    assert report._pct_range(0.125, None) == "-" and report._pct_range(False, 0.4) == "-"
    table = report._cells_table(["run", "rate"], [["<b>a</b>", "25.0 %"]])
    assert table == ("<table><tr><th class='k'>run</th><th class='n'>rate</th></tr>"
                     "<tr><td class='k'><b>a</b></td><td class='n'>25.0 %</td></tr></table>")

import numpy as np
import pytest

pytest.importorskip("mujoco")

from worldpolicy.fileio import SIM_REPORT_FIGURE
from worldpolicy.sim.evaluate import EvalReport, report_figure, write_report
from worldpolicy.sim.rollout import EpisodeResult


def _report(outcomes: list[bool], seed: int = 0) -> EvalReport:
    episodes = [EpisodeResult(seed=seed + i, success=ok, steps=20 + i if ok else 60,
                              success_step=20 + i if ok else None, prompt="reach the ball", chunks=3,
                              final_distance_m=0.02, policy_s=0.1, wall_s=0.2)
                for i, ok in enumerate(outcomes)]
    return EvalReport("reach", "panda_reach", "panda", {"kind": "execute"}, 15.0, 0, episodes=episodes, max_steps=60)


def test_report_png_leaves_pyplot_alone(tmp_path, monkeypatch):
    """write_report called matplotlib.use("Agg"): in a notebook that switches pyplot's backend and closes its figures."""
    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError("matplotlib.use was called")

    monkeypatch.setattr(matplotlib, "use", refuse)
    written = write_report(_report([True, False]), tmp_path)
    assert (tmp_path / SIM_REPORT_FIGURE) in written and (tmp_path / SIM_REPORT_FIGURE).stat().st_size > 1000


def test_the_run_page_describes_the_figure_under_the_name_it_is_written_under(tmp_path):
    """The figure's name, one constant: the page's alt text and caption say what it shows, not 'not known'."""
    from worldpolicy.viz.report import describe_image

    figure = next(p for p in write_report(_report([True]), tmp_path) if p.suffix == ".png")
    assert figure.name == SIM_REPORT_FIGURE
    assert describe_image(figure.name).startswith("the sim run's success rate")


def test_report_figure_counts_in_whole_episodes_and_keeps_its_legends_off_the_data():
    """Episodes and seeds were ticked 1.2, 1.4 / -0.25, 0.5; the legend sat on the CI band; no step limit."""
    fig = report_figure(_report([True, False]))
    fig.canvas.draw()
    rate, lengths = fig.axes
    for ax in (rate, lengths):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert ax.get_legend().get_window_extent().y1 < ax.get_window_extent().y0  # below the axes
    assert "step limit (60)" in lengths.get_legend_handles_labels()[1]
    assert lengths.get_ylabel() == "episode length [control steps at 15 Hz]"
    assert fig.get_suptitle() == "reach · panda_reach\nsuccess 1/2 episodes at 15 Hz, strategy execute"
    bars = [p for p in lengths.patches]
    assert len(bars) == 2 and not np.allclose(bars[0].get_facecolor(), bars[1].get_facecolor())


def test_a_one_episode_report_shows_its_interval_and_whole_number_axes():
    """One episode: the CI band (one x) drew nothing, episodes were ticked 0.945..1.05 and the seed -0.4..0.4."""
    fig = report_figure(_report([False]))
    fig.canvas.draw()
    rate, lengths = fig.axes
    for ax in (rate, lengths):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    (band,) = rate.collections[:1]
    extent = band.get_paths()[0].get_extents()
    assert extent.width > 0 and (extent.y0, extent.y1) == pytest.approx((0.0, 0.7935), abs=1e-3)  # Wilson 0/1


def test_the_seeds_are_ticked_as_they_are():
    """`worldpolicy sim`'s seeds from 10000 were ticked 0, 1, 2 ... with "+1e4" in the corner."""
    fig = report_figure(_report([True, False, False, True, False, False], seed=10000))
    fig.canvas.draw()
    _, lengths = fig.axes
    low, high = lengths.get_xlim()
    labels = [t.get_text() for t in lengths.get_xticklabels() if low <= t.get_position()[0] <= high]
    assert lengths.xaxis.get_major_formatter().get_offset() == ""
    assert labels and all(10000 <= int(label) <= 10005 for label in labels)


def test_episode_lengths_are_ticked_in_whole_steps():
    """A 20-step limit's lengths (15, 17, 20) were ticked 2.5, 5.0, ... 17.5 steps."""
    episodes = [EpisodeResult(seed=i, success=steps < 20, steps=steps, success_step=steps if steps < 20 else None,
                              prompt="reach the ball", chunks=steps, final_distance_m=0.02, policy_s=0.1, wall_s=0.2)
                for i, steps in enumerate([20, 15, 17])]
    fig = report_figure(EvalReport("reach", "panda_reach", "panda", {"kind": "execute"}, 15.0, 0, episodes=episodes,
                                   max_steps=20))
    fig.canvas.draw()
    _, lengths = fig.axes
    ticks = [t for t in lengths.get_yticks() if lengths.get_ylim()[0] <= t <= lengths.get_ylim()[1]]
    assert len(ticks) > 2 and all(float(t).is_integer() for t in ticks)


def test_a_report_reads_in_one_line_and_shows_as_its_table_in_a_notebook():
    """The dataclass repr spelled out every episode and the policy's settings: a wall of text per episode as a
    notebook cell's value. One line says what ran and how it did; a notebook renders report.md's table."""
    report = _report([True, False] * 20)
    report.requested = 50
    text = repr(report)
    assert "\n" not in text and len(text) < 200
    assert text == ("EvalReport(task='reach', policy='panda_reach', success 20/40 = 50.0 % (95 % CI 35.2-64.8 %), "
                    "incomplete: 40 of 50 ran, seeds 0..49, strategy='execute')")
    assert report._repr_markdown_() == report.markdown()
    assert "no episodes" in repr(_report([])) and _report([])._repr_markdown_() is None


def test_a_rewrite_of_the_report_builds_its_json_once_and_copies_no_episode(tmp_path, monkeypatch):
    """`write_report` rewrites report.json and report.md while a run goes on (`ReportKeeper`'s summary), each time from
    every episode so far: report.md built the whole `to_json()` again, and each episode's `to_json` deep-copied its
    fields (`asdict`), its frames too where they were still held."""
    import json

    class NoCopy:
        def __deepcopy__(self, memo):
            raise AssertionError("an episode's frames were copied to write its report")

    report = _report([True, False, True])
    report.episodes[0].frames = NoCopy()
    assert report.episodes[0].to_json() == json.loads(json.dumps(report.to_json()["episodes"][0]))
    assert "frames" not in report.episodes[0].to_json()
    built = []
    real = EvalReport.to_json
    monkeypatch.setattr(EvalReport, "to_json", lambda self: built.append(1) or real(self))
    write_report(report, tmp_path, plots=False)
    assert len(built) == 1
    assert json.loads((tmp_path / "report.json").read_text())["successes"] == 2
    assert "**Success 2/3 = 66.7 %**" in (tmp_path / "report.md").read_text()

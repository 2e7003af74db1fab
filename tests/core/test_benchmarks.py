"""The benchmark scripts run from a checkout with their documented commands: each at its smallest settings prints the
ratio lines its README section quotes, and a bad value is refused naming the flag. No timing is asserted (the figures
are the scripts' job; these tests keep the scripts from rotting between the runs that produce them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH"))
                                                       if p)}
    return subprocess.run([sys.executable, f"benchmarks/{script}", *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _ran(script: str, *args: str, timeout: float = 300) -> str:
    done = _run(script, *args, timeout=timeout)
    assert done.returncode == 0, f"{script} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def _main_failing(monkeypatch, capsys, script: str, *args: str) -> tuple[str, str]:
    """`script`'s `main()` run in this process with `args` (the caller has monkeypatched what makes its check fail):
    the last line it exits with, asserted to be a failure's, and what it printed before."""
    module = sys.modules[script.removesuffix(".py")]
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exited:
        module.main()
    assert isinstance(exited.value.code, str), exited.value.code  # sys.exit(message): exit status 1
    return exited.value.code, capsys.readouterr().out


def test_engine_against_the_pipeline_prints_its_speed_up_and_action_difference(tmp_path):
    out = _ran("bench_engine.py", "--settings", "tiny", "--repeats", "1", "--json", str(tmp_path / "r.json"))
    assert re.search(r"engine, eager .* speed-up +\d+\.\d+x +max relative action difference \d", out), out
    assert re.search(r"tiny chunk 16 eager +: pipeline .* ms, engine .* ms, +\d+\.\d+x", out), out
    (result,) = json.loads((tmp_path / "r.json").read_text())
    # The same work as the pipeline, the same actions: measured 7.6e-7 to 1.2e-6; 1e-5 as in test_core_parity (1e-4
    # let a timestep 0.1 % off through).
    assert result["variants"]["eager"]["max_rel_diff"] < 1e-5


def test_serving_prints_the_load_and_overhead_ratios():
    pytest.importorskip("openpi_server")  # .ci/extra-test-installs.sh installs the reference server
    out = _ran("bench_serving.py", "--cost-ms", "5", "--clients", "2", "--requests", "2", "--overhead-requests", "3",
               "--repeats", "1")
    assert "throughput ratio batched / ours (max_batch=1):" in out and "throughput ratio batched / openpi:" in out
    for other in ("ours, asyncio loop", "openpi", "openpi + our allocator", "openpi + allocator + uvloop"):
        assert re.search(rf"ours / {re.escape(other)}: round-trip p50 \d+\.\d+ \(95 % CI", out), out
    assert "inf" not in out and "nan" not in out  # a few requests may take no clock tick of server CPU: n/a, not inf


def test_serving_servers_run_this_checkouts_worldpolicy(monkeypatch):
    """The server processes import worldpolicy from this checkout even when PYTHONPATH does not name it (an
    editable install of another checkout would otherwise serve the requests being measured)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # restores sys.path, which bench_serving also extends
    monkeypatch.delenv("PYTHONPATH", raising=False)
    import bench_serving

    with bench_serving.ServerProcess("ours", 0.0, 1) as server:
        environ = Path(f"/proc/{server.proc.pid}/environ").read_bytes().split(b"\0")
    (path,) = [v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PYTHONPATH=")]
    assert path.split(os.pathsep)[0] == str(ROOT / "src")
    with pytest.raises(RuntimeError, match=r"(?s)ours \(max_batch=0\) server did not start: .*max_batch=0 is invalid"):
        bench_serving.ServerProcess("ours", 0.0, 0)  # why a server did not start is shown, not swallowed


def test_train_step_prints_the_speed_up_and_loss_difference():
    out = _ran("bench_train_step.py", "--rounds", "1")
    assert re.search(r"speed-up: \d+\.\d+x", out) and "largest loss difference over 1 steps:" in out, out


def test_video_decode_prints_each_read_against_the_whole_clip():
    out = _ran("bench_video_decode.py", "--frames", "35", "--size", "32x32")
    assert re.search(r"last frame: +1 frames, peak RSS .*\(whole clip / this: \d+x\)", out), out
    assert re.search(r"first 34 frames: +34 frames", out), out
    out = _ran("bench_video_decode.py", "--part", "blocks", "--frames", "40", "--size", "32x32", "--block", "8",
               "--repeats", "1")
    assert re.search(r"blocks, decoding on: +\d+\.\d+ s +\(\d+\.\d+x the whole read\)", out), out
    assert re.search(r"sought / decoding on: \d+\.\d+x; frames identical: True", out), out


def test_dataset_select_prints_the_copy_against_encoding_again():
    out = _ran("bench_dataset_select.py", "--episodes", "2", "--frames", "5", "--size", "16x16", "--repeats", "1")
    assert re.search(r"copied: +\d+\.\d+ s +\(1 videos copied, 0 encoded again; .* frames: 0\)", out), out
    assert re.search(r"encoded again / copied: \d+\.\d+x", out), out


def test_latent_cache_prints_the_memory_of_building_and_reading_it_before_and_after():
    out = _ran("bench_latent_cache.py", "--windows", "4", "--latent", "2x2x4x4")
    for step in ("build", "train"):
        for way in ("before", " after"):
            assert re.search(rf"{step} {way}: peak RSS [+-]\d+ MiB \(anonymous [+-]\d+\) over the \d+ MiB before it; "
                             rf"resident at its end: anonymous [+-]\d+ MiB, file-backed [+-]\d+ MiB", out), out
        assert re.search(rf"{step}: peak RSS growth before / after: \d+\.\d+x; peak anonymous growth", out), out
    assert "same latents written and read every way: True" in out, out


def test_dataset_prints_each_steps_cost_per_episode_at_each_size():
    out = _ran("bench_dataset.py", "--sizes", "6,12", "--frames", "3", "--per-file", "4")
    for n in (6, 12):
        assert re.search(rf"{n} episodes of 3 frames, 4 a file \(written in .*\), peak RSS \d+ MB; window_order: "
                         rf"{2 * n} windows, \d+ MB allocated at its peak:", out), out
    for step in ("open", "summary", "every episode", "check_files", "window_order"):
        assert re.search(rf"{step}: +\d+\.\d+ s +\d+\.\d+ us per episode", out), out
        assert re.search(rf"{step} per episode, 12 / 6 episodes: \d+\.\d+x", out), out


@pytest.mark.slow
def test_label_memory_prints_both_labellers_and_that_their_datasets_match():
    out = _ran("bench_label_memory.py", "--frames", "20", "--size", "16x16", "--cameras", "2", "--batch-size", "1")
    assert re.search(r"segments: peak RSS \+ *\d+ MiB", out), out
    assert re.search(r"peak RSS whole / segments: \d+\.\d+x; datasets identical file by file: True", out), out


@pytest.mark.slow
def test_from_sim_memory_prints_both_recordings_and_that_their_datasets_match():
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    out = _ran("bench_from_sim_memory.py", "--episodes", "1", "--frames", "3", "--size", "16x16", "--repeats", "2")
    assert "median of 2" in out, out
    assert re.search(r"streamed: peak RSS \+ *\d+ MiB, +\d+\.\d+ s wall, +\d+\.\d+ s CPU", out), out
    assert re.search(r"whole / streamed: peak RSS \d+\.\d+x, wall \d+\.\d+x, CPU \d+\.\d+x; datasets identical file "
                     r"by file: True", out), out


def test_label_memory_whole_labeller_takes_what_label_passes(monkeypatch):
    """The benchmark's old labeller stands in for `label._label`, called with its arguments: a parameter added there
    (the episode's own `columns`) must be taken here too, or the "whole" run fails (the run itself is a slow test)."""
    import inspect

    pytest.importorskip("pyarrow", reason="worldpolicy.data needs the train extra (pyarrow)")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_label_memory

    from worldpolicy.data import label

    assert list(inspect.signature(bench_label_memory._label_whole).parameters) == list(
        inspect.signature(label._label).parameters)


def test_dream_io_prints_the_old_writing_against_the_new():
    out = _ran("bench_dream_io.py", "--chunks", "1,2", "--no-plots", timeout=600)
    assert re.search(r"model \(policy \+ world model\) per chunk: \d+ ms", out), out
    assert re.search(r"2 chunks: old writes \d+ ms over the chunks .* = \d+\.\d+ s; new \d+ ms", out), out
    assert re.search(r"2 chunks: writing old / new \d+\.\d+x \(over the chunks \d+\.\d+x, .*\); last chunk's write "
                     r"old / new \d+\.\d+x; .* same files: yes", out), out  # both ways end with the same files


def test_dream_io_exits_non_zero_when_the_files_differ(monkeypatch, capsys):
    """A failed check used to print "same files: NO" and exit 0 (seen only by reading the figures)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_dream_io  # noqa: F401  (run by _main_failing)

    from worldpolicy.sim.world_model import DreamRecorder

    finish = DreamRecorder.finish

    def finish_then_differ(self):
        finish(self)
        with open(self.out / "settings.json", "a") as file:
            file.write(" ")

    monkeypatch.setattr(DreamRecorder, "finish", finish_then_differ)
    last, out = _main_failing(monkeypatch, capsys, "bench_dream_io.py", "--chunks", "1", "--no-plots")
    assert "same files: NO" in out, out  # the figures still printed
    assert last == "check failed: 1 chunks: both ways end with the same files"


def test_video_decode_exits_non_zero_when_the_frames_differ(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_video_decode  # noqa: F401

    from worldpolicy.data.video import SegmentReader

    read = SegmentReader.read  # what all three reads decode with: the blocks after the first one bit off

    def read_then_differ(self, from_timestamp, *args):
        return read(self, from_timestamp, *args) ^ (from_timestamp > 0)

    monkeypatch.setattr(SegmentReader, "read", read_then_differ)
    last, out = _main_failing(monkeypatch, capsys, "bench_video_decode.py", "--part", "blocks", "--frames", "40",
                              "--size", "32x32", "--block", "8", "--repeats", "1")
    assert "frames identical: False" in out, out
    assert last == "check failed: the three reads' frames are identical"


def test_sim_baselines_exit_non_zero_when_a_bar_is_missed(monkeypatch, capsys, tmp_path):
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_sim_baselines

    monkeypatch.setattr(bench_sim_baselines, "BARS", {"scripted": (">=", 0.95), "random": (">=", 0.5)})
    last, out = _main_failing(monkeypatch, capsys, "bench_sim_baselines.py", "--tasks", "reach", "--episodes", "1",
                              "--out", str(tmp_path / "t.json"))
    assert "SOME FAIL" in out and (tmp_path / "t.json").exists(), out  # the table still written
    assert last == "check failed: reach random bar >= 50%"


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args"), [
    ("bench_label_memory.py", ["--frames", "20", "--size", "16x16", "--cameras", "1", "--batch-size", "1"]),
    ("bench_from_sim_memory.py", ["--episodes", "1", "--frames", "3", "--size", "16x16"]),
])
def test_memory_benchmarks_exit_non_zero_when_the_datasets_differ(monkeypatch, capsys, script, args):
    if script == "bench_from_sim_memory.py":
        pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("pyarrow", reason="worldpolicy.data needs the train extra (pyarrow)")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    module = __import__(script.removesuffix(".py"))
    monkeypatch.setattr(module, "_same_tree", lambda compared: False)
    last, out = _main_failing(monkeypatch, capsys, script, *args)
    assert "datasets identical file by file: False" in out, out
    assert last.startswith("check failed: the ") and last.endswith("datasets are identical file by file"), last


def test_sim_batch_prints_both_rates_and_their_ratio():
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    out = _ran("bench_sim_batch.py", "--num-envs", "2", "--episodes", "2", "--max-steps", "2")
    assert re.search(r"^ +1 +\d+\.\d+ +\d+\.\d+ +4 +4$", out, re.MULTILINE), out  # one request per model call
    assert re.search(r"^ +2 +\d+\.\d+ +\d+\.\d+ +2 +4$", out, re.MULTILINE), out  # both envs' requests in each call
    assert re.search(r"ratio N=2 / N=1: \d+\.\d+x; same success and steps per episode: True", out), out


def test_sim_rerun_prints_each_policys_overhead_and_ratio():
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("rerun", reason="the rerun extra is not installed")
    out = _ran("bench_sim_rerun.py", "--episodes", "1", "--repeats", "1", "--max-steps", "2")
    for name in ("scripted", "scripted asked with the cameras"):
        assert re.search(rf"^{name}: 2 steps; without \d+\.\d+ ms/step, with --rerun \d+\.\d+ ms/step: "
                         r"\+-?\d+\.\d+ ms/step, ratio \d+\.\d+x; \d+\.\d+ kB/step in the \.rrd$", out,
                         re.MULTILINE), out


def test_inverse_canvas_prints_both_canvases():
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    out = _ran("bench_inverse_canvas.py", "--seeds", "1")
    assert re.search(r"seed 0 aspect rule +generated on \[256, 256\], read on \[320, 256\]: MAE xyz", out), out
    assert re.search(r"seed 0 recorded +generated on \[256, 256\], read on \[256, 256\]: MAE xyz", out), out
    for name in ("aspect rule", "recorded   "):
        assert re.search(rf"{name}: MAE xyz \d+\.\d+ mm, rot6d \d\.\d+, all columns \d\.\d+ \(1 rollouts", out), out


def test_lora_checkpoint_sizes_prints_the_adapter_share():
    sizes = json.loads(_ran("lora_checkpoint_sizes.py", "--rank", "1"))
    assert 0 < sizes["adapter_checkpoint_vs_merged"] < 0.01 and sizes["transformer_parameters"] > 1e10


def test_ik_prints_tracking_and_solve_time():
    report = json.loads(_ran("bench_ik.py", "--chunks", "1"))
    assert set(report) == {"no_speed_limit", "at_15fps", "ratios_speed_limited_over_no_limit"}  # ActionDecoder's rate
    for config in ("no_speed_limit", "at_15fps"):
        expected = {"line_17cm_32", "circle_r8cm_64", "droid_random_reanchored", "solve_time_ms", "pass"}
        assert expected <= set(report[config])
    assert report["at_15fps"]["droid_random_reanchored"]["mean_mm"] < 5  # within the arm's speed: tracked as before
    assert set(report["ratios_speed_limited_over_no_limit"]) == {"solve_time_median", "droid_chunk_ms"}


def test_sim_baselines_print_each_bar_and_write_the_table(tmp_path):
    out = _ran("bench_sim_baselines.py", "--tasks", "reach", "--episodes", "1", "--out", str(tmp_path / "t.json"))
    assert re.search(r"reach +scripted +\d/1 .* bar >= 95%", out), out
    assert re.search(r"reach +random +\d/1 .* bar <= 10%", out), out
    assert [row["policy"] for row in json.loads((tmp_path / "t.json").read_text())] == ["scripted", "random"]


def test_first_frame_encode_prints_its_ratio_and_that_the_latent_is_the_same():
    out = _ran("bench_first_frame_encode.py", "--repeats", "1", "--frames", "2", "--size", "32x32")
    assert re.search(r"whole canvas \d+\.\d+ ms, first frame \d+\.\d+ ms, \d+\.\d+x", out), out
    assert "first latent frame bit-equal: True" in out


def test_sim_record_prints_its_ratio_and_that_both_ways_saw_the_same():
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    out = _ran("bench_sim_record.py", "--episodes", "1", "--steps", "2", "--repeats", "1", "--size", "32x48")
    assert re.search(r"cameras rendered again \d+\.\d+ s \(15 renders\), taken from the frame \d+\.\d+ s "
                     r"\(12 renders\), \d+\.\d+x", out), out
    assert "same request images: True; same frames: True" in out


@pytest.mark.slow
def test_train_memory_prints_each_variant_against_fp32():
    out = _ran("bench_train_memory.py", "--batch", "1", "--repeats", "1", timeout=900)
    for variant in ("fp32 plain", "fp32 checkpointing", "bf16 plain", "bf16 checkpointing"):
        assert re.search(rf"{variant} *: activations kept +\d+\.\d+ GiB \(\d\.\d+x\), step .*x\)", out), out


@pytest.mark.slow
def test_world_model_prints_model_against_baselines():
    out = _ran("bench_world_model.py", "--episodes", "1", "--stride", "100")
    assert re.search(r"inverse dynamics: .* \(\d+\.\d+x better\)", out) and "static-frame baseline" in out, out


@pytest.mark.slow
def test_planning_prints_both_arms_and_the_ties():
    out = _ran("bench_planning.py", "--episodes", "1", "--candidates", "2", "--execute-steps", "4", timeout=1200)
    assert re.search(r"best-of-2: \d+ % success, .*x the compute\)", out), out
    assert re.search(r"the scores tied in \d+ of \d+ decisions", out), out


@pytest.mark.slow
def test_planning_cost_prints_each_n_batched_and_separate_with_its_ratios():
    out = _ran("bench_planning_cost.py", "--candidates", "1,2", "--repeats", "1", timeout=1200)
    assert re.search(r"plain Policy\.act \(one chunk, no rollout, no video\): \d+\.\d+ s per chunk", out), out
    for n in (1, 2):  # batched s, x N=1, x plain, separate s, x N=1, x plain, separate / batched, same choice
        row = rf"^ +{n} +\d+\.\d+ +\d+\.\d+x +\d+\.\dx +\d+\.\d+ +\d+\.\d+x +\d+\.\dx +\d+\.\d+x +[01]/1$"
        assert re.search(row, out, re.MULTILINE), out


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "_args.py"))
def test_help_shows_the_whole_description(script):
    """`--help` shows the script's docstring to its end, line breaks kept (its first line alone stopped
    mid-sentence)."""
    import ast

    doc = ast.get_docstring(ast.parse((ROOT / "benchmarks" / script).read_text()), clean=False)
    done = _run(script, "--help", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    last = [line for line in doc.splitlines() if line.strip()][-1]
    assert last in done.stdout, done.stdout


@pytest.mark.parametrize(("script", "args", "refusal"), [
    ("bench_engine.py", ["--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
    ("bench_engine.py", ["--settings", "huge"], "--settings: unknown huge"),
    ("bench_engine.py", ["--steps", "0"], "argument --steps: expected an integer >= 1, got '0'"),
    ("bench_engine.py", ["--guidance", "nan"], "argument --guidance: expected a number >= 0, got 'nan'"),
    ("bench_serving.py", ["--clients", "0"], "argument --clients: expected an integer >= 1, got '0'"),
    ("bench_serving.py", ["--overhead-requests", "-5"], "argument --overhead-requests: expected an integer >= 1"),
    ("bench_serving.py", ["--cost-ms", "nan"], "argument --cost-ms: expected a number >= 0, got 'nan'"),
    ("bench_train_step.py", ["--rounds", "0"], "argument --rounds: expected an integer >= 1, got '0'"),
    ("bench_train_memory.py", ["--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
    ("bench_dataset_select.py", ["--episodes", "1"], "argument --episodes: expected an integer >= 2, got '1'"),
    ("bench_dataset_select.py", ["--size", "15x16"], "--size='15x16': each side must be even and >= 16"),
    ("bench_dataset.py", ["--sizes", "1000"], "--sizes='1000': expected two or more episode counts >= 1"),
    ("bench_dataset.py", ["--frames", "1"], "argument --frames: expected an integer >= 2, got '1'"),
    ("bench_latent_cache.py", ["--windows", "1"], "argument --windows: expected an integer >= 2, got '1'"),
    ("bench_latent_cache.py", ["--latent", "4x2x8"], "--latent='4x2x8': expected four sizes >= 1 (CxTxHxW)"),
    ("bench_video_decode.py", ["--frames", "34"], "argument --frames: expected an integer >= 35, got '34'"),
    ("bench_video_decode.py", ["--size", "8x64"], "--size='8x64': each side must be >= 16"),
    ("bench_video_decode.py", ["--part", "blocks", "--gop", "0"], "argument --gop: expected an integer >= 1, got '0'"),
    ("bench_label_memory.py", ["--frames", "1"], "argument --frames: expected an integer >= 2, got '1'"),
    ("bench_from_sim_memory.py", ["--episodes", "0"], "argument --episodes: expected an integer >= 1, got '0'"),
    ("bench_from_sim_memory.py", ["--size", "8x64"], "--size='8x64': each side must be >= 16"),
    ("bench_label_memory.py", ["--size", "15x16"], "--size='15x16': each side must be even and >= 16"),
    ("lora_checkpoint_sizes.py", ["--rank", "0"], "argument --rank: expected an integer >= 1, got '0'"),
    ("bench_dream_io.py", ["--chunks", "0,8"], "argument --chunks: expected comma-separated chunk counts, each >= 1"),
    ("bench_ik.py", ["--chunks", "0"], "argument --chunks: expected an integer >= 1, got '0'"),
    ("bench_ik.py", ["--robot", "nope"], "--robot nope: robot: unknown name 'nope'"),
    ("bench_sim_batch.py", ["--num-envs", "1"], "argument --num-envs: expected an integer >= 2, got '1'"),
    ("bench_sim_batch.py", ["--max-steps", "0"], "argument --max-steps: expected an integer >= 1, got '0'"),
    ("bench_sim_rerun.py", ["--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
    ("bench_inverse_canvas.py", ["--seeds", "0"], "argument --seeds: expected an integer >= 1, got '0'"),
    ("bench_sim_baselines.py", ["--episodes", "0"], "argument --episodes: expected an integer >= 1, got '0'"),
    ("bench_sim_record.py", ["--steps", "0"], "argument --steps: expected an integer >= 1, got '0'"),
    ("bench_first_frame_encode.py", ["--frames", "1"], "argument --frames: expected an integer >= 2, got '1'"),
    ("bench_first_frame_encode.py", ["--size", "40x32"], "--size='40x32': each side must be a multiple of 16"),
    ("bench_sim_record.py", ["--size", "8x64"], "--size='8x64': each side must be >= 16"),
    ("bench_sim_baselines.py", ["--tasks", "nope"], "argument --tasks: invalid choice: 'nope'"),
    ("bench_world_model.py", ["--stride", "0"], "argument --stride: expected an integer >= 1, got '0'"),
    ("bench_world_model.py", ["--checkpoint", "/nonexistent"], "--checkpoint /nonexistent: checkpoint='/nonexistent'"),
    ("bench_planning.py", ["--execute-steps", "0"], "argument --execute-steps: expected an integer >= 1, got '0'"),
    ("bench_planning.py", ["--checkpoint", "/nonexistent"], "--checkpoint /nonexistent: checkpoint='/nonexistent'"),
    ("bench_planning_cost.py", ["--candidates", "0,2"], "argument --candidates: expected a comma list of distinct"),
    ("bench_planning_cost.py", ["--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
])
def test_bad_values_are_refused_naming_the_flag(script, args, refusal):
    """Counts of zero used to run into a division by zero or an empty median after the setup work."""
    done = _run(script, *args, timeout=120)
    assert done.returncode == 2 and refusal in done.stderr, done.stderr[-2000:]

"""Security rules (docs/serving.md, Security). First a static scan of the shipped package (and the scripts,
benchmarks and examples beside it): no pickle-family module, no `torch.load` without `weights_only=True`, no
`torch.save`, pandas pickles or `np.save` that may pickle, no `yaml.load`, no `eval`/`exec`/`compile`, no shell, no
`allow_pickle=True`, no `trust_remote_code=True`; a regression fails here whether or not a test reaches the line. Then
what data from others may not do: a checkpoint naming any class as its scheduler, an image declaring gigapixels, a link
in a staged folder loosening a file elsewhere; and an open server saying so."""

from __future__ import annotations

import ast
import json
import struct
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCANNED = [REPO / "src" / "worldpolicy", REPO / "scripts", REPO / "benchmarks", REPO / "examples"]

# modules whose loads run code from the bytes they read
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "joblib", "dill", "cloudpickle"}
# calls that execute data, or read it with a loader that can
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "os.system", "os.popen", "yaml.load", "yaml.load_all",
                   "yaml.unsafe_load", "yaml.full_load", "torch.serialization.load", "torch.save"}
PICKLE_METHODS = {"read_pickle", "to_pickle"}  # pandas, on the module or a frame


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for an attribute chain on a name, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def _true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def forbidden(source: str) -> list[str]:
    """`line: what` for each forbidden import or call in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{node.lineno}: import {n}" for n in names if n.split(".")[0] in PICKLE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name, keywords = _dotted(node.func), {k.arg: k.value for k in node.keywords}
        if name in FORBIDDEN_CALLS or name.rpartition(".")[2] in PICKLE_METHODS:
            found.append(f"{node.lineno}: {name}()")
        if name in ("np.save", "numpy.save") and not _false(keywords.get("allow_pickle")):  # pickles object arrays
            found.append(f"{node.lineno}: {name}() without allow_pickle=False")
        if name == "torch.load" and not _true(keywords.get("weights_only")):
            found.append(f"{node.lineno}: torch.load() without weights_only=True")
        found += [f"{node.lineno}: {name or 'call'}({arg}=True)"
                  for arg in ("shell", "allow_pickle", "trust_remote_code") if _true(keywords.get(arg))]
    return found


def test_the_package_scripts_and_benchmarks_hold_no_forbidden_call():
    files = [f for root in SCANNED for f in sorted(root.rglob("*.py"))]
    assert len(files) > 50  # the scan found the package
    problems = [f"{f.relative_to(REPO)}:{hit}" for f in files for hit in forbidden(f.read_text())]
    assert not problems, "forbidden (docs/serving.md, Security): " + "; ".join(problems)


@pytest.mark.parametrize("line", [
    "import pickle", "from joblib import load", "import dill.settings", "eval('1')", "exec(code)",
    "compile(s, 'f', 'exec')", "os.system('ls')", "yaml.load(f)", "torch.load(p)", "torch.load(p, weights_only=False)",
    "subprocess.run(c, shell=True)", "np.load(p, allow_pickle=True)",
    "AutoTokenizer.from_pretrained(p, trust_remote_code=True)", "pd.read_pickle(p)", "frame.to_pickle(p)",
    "torch.save(state, p)", "np.save(p, a)",
])
def test_the_scan_catches_each_forbidden_form(line):
    assert forbidden(line), line


@pytest.mark.parametrize("line", [
    "model.eval()", "torch.load(p, weights_only=True)", "np.load(p, allow_pickle=False)", "re.compile('x')",
    "torch.compile(m)", "subprocess.run(['ls'])", "yaml.safe_load(f)", "np.save(p, a, allow_pickle=False)",
    "save_file(tensors, p)",
])
def test_the_scan_passes_safe_forms(line):
    assert not forbidden(line), line


def _scheduler_only_checkpoint(folder: Path, class_name: str) -> Path:
    """What `local_scheduler` reads of a checkpoint: its scheduler config and model_index.json."""
    (folder / "scheduler").mkdir(parents=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": class_name}))
    (folder / "model_index.json").write_text(json.dumps({"use_native_flow_schedule": False}))
    return folder


def test_a_checkpoint_cannot_name_a_non_scheduler_class_as_its_scheduler(tmp_path):
    """The class is data from the checkpoint: a model or pipeline class would be built from the config, any size."""
    pytest.importorskip("diffusers")
    from worldpolicy.engine.loading import local_scheduler

    with pytest.raises(ValueError, match=r"_class_name='AutoencoderKL' is not a scheduler; accepted: a diffusers "
                                         r"scheduler class"):
        local_scheduler(_scheduler_only_checkpoint(tmp_path / "model", "AutoencoderKL"))
    scheduler, _ = local_scheduler(_scheduler_only_checkpoint(tmp_path / "sched", "FlowMatchEulerDiscreteScheduler"))
    assert type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"


@pytest.mark.parametrize(("host", "api_key", "warned"), [
    ("0.0.0.0", None, True), ("", None, True), ("10.0.0.5", None, True), ("robot-gpu.lan", None, True),
    ("127.0.0.1", None, False), ("::1", None, False), ("localhost", None, False), ("0.0.0.0", "a-long-key", False),
])
def test_a_server_open_beyond_this_machine_without_a_key_says_so(caplog, host, api_key, warned):
    """`serve` listens on 0.0.0.0 by default, as openpi's server does (the robot is another machine): not refused,
    but logged, so an open server is a choice."""
    pytest.importorskip("websockets")
    from worldpolicy.serving.server import warn_if_open

    with caplog.at_level("WARNING", logger="worldpolicy.serving"):
        warn_if_open(host, api_key)
    said = [r.getMessage() for r in caplog.records if '"unauthenticated"' in r.getMessage()]
    assert bool(said) == warned
    assert all("--api-key-env" in line for line in said)


def _png_header(height: int, width: int) -> bytes:
    """A PNG that declares `height` x `width` pixels in a few dozen bytes (its data is one empty block)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("height", [20_000, 4_000])  # over Pillow's bomb limit; under it but not what info.json says
def test_a_dataset_image_declaring_other_pixels_is_refused_before_decoding(tmp_path, height):
    pa = pytest.importorskip("pyarrow")
    from worldpolicy.data.layout import DatasetFormatError
    from worldpolicy.data.lerobot import _image_column

    table = pa.table({"cam": [{"bytes": _png_header(height, 20_000), "path": None}]})
    with pytest.raises(DatasetFormatError, match=r"field 'cam': (holds an undecodable image: Image size|the image of "
                                                 r"frame 0 is 4000x20000 but info\.json says 4x6)"):
        _image_column(table, "cam", tmp_path / "data.parquet", tmp_path, (4, 6))


@pytest.mark.parametrize(("height", "width", "said"), [
    (20_000, 20_000, r"cannot read image .*exceeds limit"),  # Image.open's own refusal, over twice the limit
    (9_000, 10_000, r"image .* is 9000x10000 pixels; accepted: at most \d+ pixels \(PIL\.Image\.MAX_IMAGE_PIXELS\)"),
])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Image.open warns; we refuse
def test_an_input_image_over_pillows_pixel_limit_is_refused_naming_the_parameter(tmp_path, height, width, said):
    """Between MAX_IMAGE_PIXELS and twice that Pillow only warns, and decodes: a 40-byte file became ~1 GB of frames."""
    from worldpolicy.processing.observations import load_frames

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(height, width))
    with pytest.raises(ValueError, match=rf"^image: {said}"):
        load_frames(bomb, "image")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_remote_policy_refuses_an_image_over_pillows_pixel_limit_as_the_local_policy_does(tmp_path):
    """`RemotePolicy` reads image paths itself (what the local `Policy` reads, and only that, travels)."""
    pytest.importorskip("websockets")
    from worldpolicy.serving.client import _image_array

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(9_000, 10_000))
    with pytest.raises(ValueError, match=r"^image: image .* is 9000x10000 pixels; accepted: at most"):
        _image_array(bomb, "image")


def test_sharing_a_staged_folder_leaves_what_a_link_in_it_points_to_alone(tmp_path):
    """`share_tree` gives staged outputs the usual modes; chmod through a link loosened a 0600 file elsewhere."""
    import os

    from worldpolicy.fileio import share_tree

    secret = tmp_path / "id_key"
    secret.write_text("k")
    secret.chmod(0o600)
    staged = tmp_path / "staged"
    (staged / "sub").mkdir(parents=True)
    (staged / "sub" / "link").symlink_to(secret)
    (staged / "weights").write_text("w")
    (staged / "weights").chmod(0o600)
    share_tree(staged)
    assert secret.stat().st_mode & 0o777 == 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert (staged / "weights").stat().st_mode & 0o777 == 0o666 & ~umask  # what it is for: still done


@pytest.mark.parametrize("stats_file", ["../outside.json", "{outside}", "sub/../../outside.json"])
def test_a_checkpoints_embodiment_json_cannot_name_stats_outside_its_folder(tmp_path, stats_file):
    """A checkpoint's embodiment.json is data (a hub download, a folder an MCP server lists): its `stats_file` was
    read wherever it pointed, and the error said what that file held (`q01='...'`) to whoever asked for the listing."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.policy import checkpoint_embodiment, checkpoint_spec

    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"q01": "TOKEN-abc123", "q99": [1.0]}))
    droid = get_embodiment("droid/joint_pos")
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "embodiment.json").write_text(json.dumps({
        "name": "leaky", "domain": "droid_lerobot", "action_dim": 8, "columns": list(droid.columns), "chunk_size": 4,
        "fps": 15, "stats_file": stats_file.format(outside=outside)}))
    for read in (checkpoint_embodiment, checkpoint_spec):
        with pytest.raises(ValueError, match=r"stats_file=.* is outside the checkpoint's folder") as caught:
            read(checkpoint, None) if read is checkpoint_embodiment else read(checkpoint)
        assert "TOKEN" not in str(caught.value)
    # beside the file, as an older trainer wrote it, it is read as before
    (checkpoint / "stats.json").write_text(json.dumps({"q01": [-1.0] * 8, "q99": [1.0] * 8}))
    spec = json.loads((checkpoint / "embodiment.json").read_text())
    (checkpoint / "embodiment.json").write_text(json.dumps(dict(spec, stats_file="stats.json")))
    assert checkpoint_embodiment(checkpoint, None).stats["q99"] == (1.0,) * 8
    assert checkpoint_embodiment(checkpoint / ".." / "ckpt", None).stats["q99"] == (1.0,) * 8  # a `..` in its path


def test_an_embodiment_dict_declaring_a_huge_action_dim_is_refused_before_anything_that_size_is_built():
    """A server's metadata frame (`RemotePolicy` builds its embodiment from it) and a checkpoint's embodiment.json are
    data: the default units, one per action dim, were built before action_dim was compared with the columns, so
    action_dim=10**9 cost 8 GB and 20 s (2**62 a MemoryError, which a client does not catch) before the refusal."""
    from worldpolicy.embodiments import embodiment_from_dict, get_embodiment

    spec = dict(get_embodiment("droid/joint_pos").to_dict(), units=None, action_dim=2**62)
    with pytest.raises(ValueError, match=rf"action_dim={2**62} but 8 columns and 8 units were given"):
        embodiment_from_dict(spec)

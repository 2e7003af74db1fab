"""A dataset is data from others (the hub): the paths its files give stay inside its folder (its image cells' pixel
counts: tests/core/test_core_security.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worldpolicy.data import LeRobotDataset
from worldpolicy.data.layout import DatasetFormatError, check_feature

pa = pytest.importorskip("pyarrow")


def _edit_info(root: Path, **fields) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    info.update(fields)
    (root / "meta/info.json").write_text(json.dumps(info))


@pytest.mark.parametrize(("field", "template"), [
    ("data_path", "../elsewhere/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"),
    ("data_path", "/tmp/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"),
    ("video_path", "videos/../../{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"),
])
def test_info_json_cannot_point_the_reader_outside_the_dataset(small_dataset, field, template):
    ds, _ = small_dataset
    _edit_info(ds.root, **{field: template})
    with pytest.raises(DatasetFormatError, match=rf"field '{field}': must be a path inside the dataset folder, got "
                                                 r".*accepted: a relative path without '\.\.' parts"):
        LeRobotDataset.open(ds.root)


@pytest.mark.parametrize("name", [".", ".."])
def test_a_feature_cannot_be_named_as_a_folder_step(name):
    """A video feature's name is a folder of the layout (`videos/{video_key}/...`), written and read."""
    spec = {"dtype": "video", "shape": [4, 6, 3], "names": ["height", "width", "channels"]}
    with pytest.raises(DatasetFormatError, match=r"not '\.' or '\.\.'"):
        check_feature(name, spec, "meta/info.json")


def test_an_image_cell_cannot_name_a_file_outside_the_dataset(tmp_path):
    from PIL import Image

    from worldpolicy.data.lerobot import _image_column

    root = tmp_path / "ds"
    root.mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "outside.png")  # a file it may not read
    table = pa.table({"cam": [{"bytes": None, "path": "../outside.png"}]})
    with pytest.raises(DatasetFormatError, match=r"the image of frame 0 names '\.\./outside\.png'; accepted: a path "
                                                 r"inside the dataset folder"):
        _image_column(table, "cam", root / "data.parquet", root, (4, 6))


def test_video_frames_of_another_size_are_refused_before_any_is_converted(small_dataset, monkeypatch):
    """A few KB of video may hold long runs of huge frames: the size info.json gives is checked on each decoded frame
    before it becomes an RGB array, not on the whole clip after."""
    import av

    ds, _ = small_dataset
    info = json.loads((ds.root / "meta/info.json").read_text())
    info["features"]["observation.images.front"]["shape"] = [8, 8, 3]  # the video holds 16x16 frames
    (ds.root / "meta/info.json").write_text(json.dumps(info))
    converted = []

    class Frame:
        def __init__(self, frame):
            self._frame = frame

        def __getattr__(self, name):
            return getattr(self._frame, name)

        def to_ndarray(self, **kwargs):
            converted.append(self._frame.time)
            return self._frame.to_ndarray(**kwargs)

    class Container:
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._container.__exit__(*exc)

        def decode(self, *args, **kwargs):
            return (Frame(f) for f in self._container.decode(*args, **kwargs))

    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: Container(real_open(*a, **k)))
    with pytest.raises(DatasetFormatError, match=r"field 'features\.observation\.images\.front\.shape': frames are "
                                                 r"16x16 but info\.json says 8x8"):
        LeRobotDataset.open(ds.root).episode(0)
    assert converted == []

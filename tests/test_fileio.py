"""Atomic outputs: nothing partial is left behind, and what lands has the mode a plain open() would give
(the private 0600 of a temporary file must not leak into artifacts copied to a device)."""
import os
import stat

import numpy as np
import pytest

from matteconv.errors import MatteconvError
from matteconv.fileio import atomic_path, atomic_paths, write_image
from matteconv.video import open_sink


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_published_file_follows_umask(tmp_path, umask_027):
    with atomic_path(tmp_path / "a.bin") as tmp:
        assert _mode(tmp) == 0o600
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "a.bin") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_paths(tmp_path / "m.prototxt", tmp_path / "m.caffemodel") as (a, b):
            a.write_text("layer {}")
            b.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(MatteconvError, match=r"nope/a.png: output folder .*nope does not exist"):
        write_image(tmp_path / "nope" / "a.png", np.zeros((4, 4, 3), np.uint8))


def test_image_and_frame_folder_outputs_follow_umask(tmp_path, umask_027):
    frame = np.full((8, 8, 3), 200, np.uint8)
    write_image(tmp_path / "one.png", frame)
    assert _mode(tmp_path / "one.png") == 0o640
    sink = open_sink(tmp_path / "frames", "folder")
    sink.write(frame)
    sink.commit()
    assert _mode(tmp_path / "frames") == 0o750
    assert _mode(tmp_path / "frames" / "frame_000000.png") == 0o640


def test_video_output_follows_umask(tmp_path, umask_027):
    from matteconv.video import write_test_video

    write_test_video(tmp_path / "v.avi", [np.full((16, 16, 3), i * 10, np.uint8) for i in range(3)])
    assert _mode(tmp_path / "v.avi") == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["v.avi"]

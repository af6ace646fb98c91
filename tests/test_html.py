"""verify --html: one self-contained page, checked for structure and rendered in headless Chromium."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from matteconv.errors import MatteconvError

GOLDEN_PHOTOS = Path(__file__).resolve().parents[1] / "golden" / "photos"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def verified(ref3_ckpt):
    from matteconv.verify.golden import load_golden
    from matteconv.verify.plan import plan_stages
    from matteconv.verify.run import verify
    from matteconv.verify.stages import Stage

    gset = load_golden(GOLDEN_PHOTOS)
    stages = plan_stages(gset, ckpt=ref3_ckpt)  # torch only
    stages.append(Stage("onnx", "-", skip="no --onnx model given"))
    stages.append(Stage("caffe", "broken.prototxt", error="broken.prototxt: Caffe aborted: bad layer"))
    report = verify(gset, stages, keep_alphas=True)
    return report, gset


@pytest.fixture(scope="module")
def page(verified, tmp_path_factory) -> Path:
    from matteconv.verify.html import write_html

    report, gset = verified
    path = tmp_path_factory.mktemp("html") / "report.html"
    write_html(report, gset, path)
    return path


def test_page_is_self_contained_with_expected_images(page, verified):
    _, gset = verified
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "url(" not in text
    srcs = re.findall(r'<img src="([^"]+)"', text)
    # per input: input frame, golden alpha, its cut-out, torch alpha, torch heat map (skipped/error stages: none)
    assert len(srcs) == len(gset.items) * 5
    assert text.count("<img") == len(srcs)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs[:4]:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(s.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert img is not None and max(img.shape[:2]) <= 256
    for name in ("torch", "onnx", "caffe", "no --onnx model given", "Caffe aborted: bad layer", "skipped", "error"):
        assert name in text
    for item in gset.items:
        assert item.name in text
    assert text.count('class="legend"') == len(gset.items)  # one colour scale per heat map
    assert "1e-6" in text
    assert page.stat().st_size < 4_000_000
    assert not [p for p in page.parent.iterdir() if p.name.endswith(".tmp")]


def test_cutout_composites_over_the_checkerboard():
    """alpha 1 keeps the frame, alpha 0 shows the board (204 / 153 in 16 px cells), 0.5 is the rounded midpoint."""
    from matteconv.verify.html import cutout

    frame = np.full((32, 32, 3), 100, np.uint8)
    alpha = np.zeros((32, 32))
    alpha[:, 16:] = 1.0
    alpha[0, 0] = 0.5
    out = cutout(frame, alpha)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:, 16:] == 100).all()
    assert out[1, 1, 0] == 204 and out[16, 1, 0] == 153 and out[0, 0, 0] == 152  # rint(0.5*100 + 0.5*204)


def test_heat_map_scale_ends():
    from matteconv.verify.html import HEAT_HI, HEAT_LO, heat_values

    v = heat_values(np.array([[0.0, HEAT_LO / 10, HEAT_LO, 1e-3, HEAT_HI, 5.0]]))
    assert v[0, 0] == v[0, 1] == v[0, 2] == 0
    assert 0 < v[0, 3] < 255
    assert v[0, 4] == v[0, 5] == 255


def test_block_max_keeps_a_single_bad_pixel():
    from matteconv.verify.html import block_max

    err = np.zeros((512, 512))
    err[301, 17] = 0.5
    small = block_max(err)
    assert small.shape == (256, 256) and small.max() == 0.5


def test_write_html_missing_folder_is_a_clear_error(verified, tmp_path):
    from matteconv.verify.html import write_html

    report, gset = verified
    with pytest.raises(MatteconvError, match="does not exist"):
        write_html(report, gset, tmp_path / "nope" / "r.html")


def test_page_renders_in_headless_chromium(page, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (make install does)")
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1200)
    assert float(img.astype(np.float64).var()) > 100.0, "screenshot is blank"
    # the heat maps are colour (inferno), the rest of the page is mostly gray: some clearly coloured pixels
    b, g, r = (img[..., i].astype(int) for i in range(3))
    coloured = (np.abs(r - b) > 40) | (np.abs(r - g) > 40)
    assert coloured.mean() > 0.01
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)

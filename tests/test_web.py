"""The local web page and the webcam view: API contract, limits, load, a real browser, video files."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facelab
from facelab.data.synth_export import synthetic_photo, synthetic_video
from facelab.training.config import TrainConfig
from helpers import run_cli


@pytest.fixture(scope="module")
def runs(smiling_run, tmp_path_factory):
    kp = tmp_path_factory.mktemp("kp") / "kp"
    facelab.train(
        TrainConfig(spec="synth:300", out=str(kp), task="keypoints", arch="kpnet-small", opt="adam", epochs=1, batch=64, size="64"),
        quiet=True,
    )
    return [smiling_run, kp]


def photo_bytes(fmt: str = "PNG") -> bytes:
    """A synthetic face pasted into a larger photo (the Haar cascade finds this one)."""
    buf = io.BytesIO()
    Image.fromarray(synthetic_photo()).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(runs):
    from fastapi.testclient import TestClient

    from facelab.web.app import create_app

    return TestClient(create_app(runs))


@pytest.mark.slow
def test_predict_contract(client):
    r = client.post("/api/predict", files={"file": ("me.png", photo_bytes(), "image/png")}, data={"target": "Smiling"})
    assert r.status_code == 200
    faces = r.json()["faces"]
    assert len(faces) == 1 and set(faces[0]) >= {"box", "predictions", "cam_png", "landmarks"}
    f = faces[0]
    x, y, w, h = f["box"]
    assert f["detected"] and 100 <= x + w / 2 <= 356 and 60 <= y + h / 2 <= 316
    assert set(f["predictions"]) == {"Smiling", "Male"} and all(0 <= p <= 1 for p in f["predictions"].values())
    assert f["cam_about"]["method"] == "cam" and f["cam_about"]["target"] == "Smiling"
    assert f["cam_about"]["explains"] == ("present" if f["predictions"]["Smiling"] >= 0.5 else "absent")
    cam = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(f["cam_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert cam.shape == (64, 64, 3)
    pts = np.array(f["landmarks"])
    assert pts.shape == (68, 2) and (pts[:, 0] > x - w).all() and (pts[:, 0] < x + 2 * w).all()
    heat = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(f["heatmap_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert heat.shape == (64, 64, 3)  # the keypoint run's heatmaps, at its input size


@pytest.mark.parametrize(
    "name, data, status, message",
    [
        ("notes.txt", b"hello, not an image", 415, "not an image"),
        ("huge.jpg", b"\xff" * (10 * 1024 * 1024 + 1), 413, "larger than 10 MB"),
        ("empty.png", b"", 400, "empty"),
    ],
)
@pytest.mark.slow
def test_bad_uploads_get_a_clear_4xx(client, name, data, status, message):
    r = client.post("/api/predict", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == status and message in r.json()["error"]


@pytest.mark.slow
def test_a_request_without_a_file_gets_the_documented_error_shape(client):
    r = client.post("/api/predict", data={"target": "Smiling"})
    assert r.status_code == 422 and "file" in r.json()["error"] and "detail" not in r.json()


def test_serving_an_unfinished_run_is_said(smiling_run, tmp_path, capsys):
    import shutil

    from facelab.web.analyser import load_runs

    unfinished = tmp_path / "unfinished"
    shutil.copytree(smiling_run, unfinished)
    (unfinished / "summary.json").unlink()
    load_runs([unfinished])
    assert "has not finished training" in capsys.readouterr().err


@pytest.mark.slow
def test_decompression_bomb_is_refused(client):
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, "PNG")  # 144 megapixels in about 20 kB
    assert len(buf.getvalue()) < 100_000
    r = client.post("/api/predict", files={"file": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 400 and "decompression bomb" in r.json()["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, timeout: float = 60) -> None:
    import httpx

    start = time.time()
    while time.time() - start < timeout:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"server on port {port} did not come up")


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """``facelab serve`` as a user starts it, on a free loopback port; its output goes to a file (a pipe nobody reads
    would stall it) that a test failing for want of the server shows."""
    port = _free_port()
    exe = Path(sys.executable).with_name("facelab")
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as out:
        command = [str(exe), "serve", *map(str, runs), "--port", str(port)]
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONFAULTHANDLER": "1"})
    try:
        _wait_for(port)
        yield Served(f"http://127.0.0.1:{port}", proc, log)
    finally:
        proc.terminate()
        proc.wait(10)


class Served(str):
    """The server's address, with its process and log for a failure's message."""

    def __new__(cls, url: str, proc: subprocess.Popen, log: Path):
        served = super().__new__(cls, url)
        served.proc, served.log = proc, log
        return served

    def said(self) -> str:
        return f"server exit status {self.proc.poll()}; it printed:\n{self.log.read_text(errors='replace')[-4000:]}"


@pytest.mark.slow
def test_server_binds_loopback_and_survives_100_concurrent_requests(server):
    import httpx

    data = photo_bytes("JPEG")

    def one(_):
        try:
            return httpx.post(f"{server}/api/predict", files={"file": ("f.jpg", data, "image/jpeg")}, timeout=120).status_code
        except httpx.HTTPError as exc:
            return repr(exc)

    with ThreadPoolExecutor(100) as pool:
        codes = list(pool.map(one, range(100)))
    assert codes == [200] * 100, server.said()
    assert httpx.get(f"{server}/api/info", timeout=10).json()["mean_ms_per_request"] > 0
    port = int(server.rsplit(":", 1)[1])
    others = [a for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET) if a[4][0] != "127.0.0.1"]
    for addr in others[:1]:  # not reachable on the machine's other interfaces
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((addr[4][0], port))


def chromium_or_skip() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    return chromium


@pytest.mark.slow
def test_annotated_video_plays_in_a_real_browser(annotated):
    """Chromium rejected the old MPEG-4 Part 2 files (DEMUXER_ERROR_NO_SUPPORTED_STREAMS); WebM VP8 plays."""
    from playwright.sync_api import sync_playwright

    path, _ = annotated
    page_file = path.with_name("play.html")
    page_file.write_text(f"<video id='v' src='{path.name}' muted></video>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_or_skip(), args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(page_file.as_uri())
        page.wait_for_function("document.getElementById('v').readyState >= 1", timeout=30_000)
        duration = page.evaluate("document.getElementById('v').duration")
        page.evaluate("document.getElementById('v').play()")
        page.wait_for_function("document.getElementById('v').currentTime > 0", timeout=30_000)
        error = page.evaluate("document.getElementById('v').error")
        browser.close()
    assert error is None and 1.0 <= duration <= 1.4  # 12 frames at 10 frames/s


@pytest.mark.slow
def test_page_in_a_real_browser(server, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    photo = tmp_path / "me.png"
    photo.write_bytes(photo_bytes())
    flags = ["--headless", "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--disable-gpu"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_selector("#target option", state="attached")
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("tr.prediction", timeout=30_000)
        names = page.locator("tr.prediction td:first-child").all_inner_texts()
        assert set(names) == {"Smiling", "Male"}
        assert page.get_attribute("#overlay", "src").startswith("data:image/png;base64,")
        page.click("#start")  # Chromium's fake camera: a moving test pattern
        page.wait_for_function("Number(document.getElementById('frames').textContent) >= 3", timeout=60_000)
        fps = float(page.inner_text("#fps"))
        assert page.inner_text("#camabout").startswith("cam map: evidence that the first face is")
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()
    assert fps > 0 and (tmp_path / "page.png").stat().st_size > 10_000


def frames_in(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def annotated(runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    video = synthetic_video(folder / "in.webm", frames=12, fps=10)
    result = facelab_webcam(runs, video, folder / "annotated.webm")
    return folder / "annotated.webm", result


@pytest.mark.slow
def test_webcam_writes_an_annotated_video(runs, annotated, tmp_path):
    path, result = annotated
    assert result.frames == 12 and result.faces >= 12 and frames_in(path) == 12
    proc = run_cli("webcam", str(runs[0]), "--source", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x.mp4"), check=False)
    assert proc.returncode == 2 and "cannot be opened" in proc.stderr


def facelab_webcam(runs, source, out):
    from facelab.web.webcam import webcam

    return webcam(runs, str(source), out, quiet=True)

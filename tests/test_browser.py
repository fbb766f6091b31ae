"""The web page in headless Chromium: load the duet example, generate, watch progress, play the video.

Needs Debian's chromium (/usr/bin/chromium) and the `playwright` Python package; skipped
with the reason where either is missing. MULTITALK_UPDATE_DOCS=1 runs it on the bundled demo model with
its own settings instead of a random tiny model, and writes the screenshot to docs/img/ui.png.
"""

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from multitalk.app.background import serve_in_background
from multitalk.random_pipeline import random_pipeline

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def wait_until(page, expression: str, timeout_ms: int = 30_000) -> None:
    """Poll ``expression`` with page.evaluate (Playwright's wait_for_function compiles strings inside the page,
    which its Content-Security-Policy forbids: the page's own policy stays on in this test)."""
    import time

    deadline = time.time() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def _requirements() -> str | None:
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed (apt install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


@contextlib.contextmanager
def page_on_server(model, data):
    """A headless page on a `multitalk serve` of ``model`` with the repository's examples; yields (page, base)."""
    from playwright.sync_api import sync_playwright

    server, base = serve_in_background(model, data, "--examples", str(REPO / "examples"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(base + "/")
            yield page, base
            browser.close()
    finally:
        server.kill()


def start_example(page, name: str, settings: dict | None = None) -> None:
    """Load an example's inputs into the form, optionally change settings, and press Generate."""
    page.click(f"button[data-example={name}]")
    wait_until(page, "document.querySelectorAll('#people .person').length === 2")
    wait_until(page, "document.getElementById('canvas').width > 0", 30_000)
    if settings:
        page.click("summary")
        for field, value in settings.items():
            page.fill(f"#{field}", value)
    page.click("#start")
    try:
        page.wait_for_selector("#video", timeout=120_000)
    except Exception:
        raise AssertionError(
            f"no video: status {page.inner_text('#status')!r}, form {page.inner_text('#form-error')!r}"
        ) from None


@pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))
def test_page_generates_the_duet_example_and_plays_it(tmp_path):
    for_docs = bool(os.environ.get("MULTITALK_UPDATE_DOCS"))
    if for_docs:  # the README shows what the bundled model makes, not a random model's noise
        from multitalk.checkpoints import default_model

        model = default_model()
    else:
        model = tmp_path / "tiny"
        random_pipeline("tiny").save_pretrained(model)
    with page_on_server(model, tmp_path / "data") as (page, _):
        fast = None if for_docs else {"num_inference_steps": "2", "num_frames": "9", "motion_frames": "3"}
        start_example(page, "duet", fast)
        wait_until(page, "document.getElementById('prompt').value.length > 0")
        assert page.eval_on_selector("#progress", "p => p.value") == 1
        wait_until(page, "document.getElementById('video').readyState >= 2", 30_000)
        page.eval_on_selector("#video", "v => v.play()")
        wait_until(page, "document.getElementById('video').currentTime > 0", 30_000)
        assert "done" in page.inner_text("#status")
        shot = tmp_path / "ui.png"
        page.screenshot(path=str(shot), full_page=True)
    if for_docs:
        shutil.copy(shot, REPO / "docs" / "img" / "ui.png")


@pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))
def test_page_dubs_a_video(tmp_path):
    """The dub example's source video is uploaded as `video`: boxes on its first frame, a dubbed result."""
    import httpx

    model = tmp_path / "tiny"
    random_pipeline("tiny").save_pretrained(model)
    with page_on_server(model, tmp_path / "data") as (page, base):
        start_example(page, "dub", {"num_inference_steps": "1", "num_frames": "9", "motion_frames": "3"})
        assert "done" in page.inner_text("#status")
        jobs = httpx.get(base + "/v1/jobs").json()
    assert len(jobs) == 1 and jobs[0]["state"] == "done"
    folder = tmp_path / "data" / "jobs" / jobs[0]["id"]
    assert (folder / "source.mp4").is_file() and (folder / "video.mp4").is_file()  # the source beside the result

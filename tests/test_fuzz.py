"""Random and adversarial requests: a one-line refusal (exit 2 / HTTP 4xx) or a valid job, never a crash."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multitalk.cli import main
from multitalk.media import write_image, write_wav

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(-5, 300), max_size=6),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)
FIELDS = [
    "prompt",
    "cond_image",
    "cond_audio",
    "audio_type",
    "bbox",
    "steps",
    "seed",
    "frames",
    "num_frames",
    "num_inference_steps",
    "shift",
    "text_guidance",
    "audio_guidance",
    "motion_frames",
    "mode",
    "negative_prompt",
    "bboxes",
]
REQUESTS = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)


class Stop(Exception):
    """The request passed every check: the model would be loaded now."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    write_image(root / "ref.png", np.full((64, 64, 3), 100, np.uint8))
    write_wav(root / "a.wav", (0.2 * np.sin(np.arange(8000) / 9)).astype(np.float32))
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=REQUESTS)
def test_the_cli_json_reader(folder, fields):
    data = {
        "prompt": "a person talks",
        "cond_image": str(folder / "ref.png"),
        "cond_audio": {"person1": str(folder / "a.wav")},
        **fields,
    }
    path = folder / "in.json"
    path.write_text(json.dumps(data, allow_nan=True))
    import multitalk.checkpoints as checkpoints

    real = checkpoints.load_pipeline
    checkpoints.load_pipeline = lambda *a, **k: (_ for _ in ()).throw(Stop())
    try:
        code = main(["generate", str(path), "--device", "cpu", "-o", str(folder / "out.mp4")])
        assert code == 2  # refused with a message (a valid request raises Stop instead)
    except Stop:
        pass
    finally:
        checkpoints.load_pipeline = real
    assert not (folder / "out.mp4").exists()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from multitalk.app.server import create_app

    app = create_app(tmp_path_factory.mktemp("data"), lambda: None, workers=0)
    with TestClient(app) as c:
        yield c


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=REQUESTS)
def test_the_http_api(folder, client, fields):
    body = json.dumps({"prompt": "a person talks", **fields}, allow_nan=True)
    files = [
        ("image", ("ref.png", (folder / "ref.png").read_bytes())),
        ("audio", ("a.wav", (folder / "a.wav").read_bytes())),
    ]
    response = client.post("/v1/jobs", files=files, data={"request": body})
    assert response.status_code in (201, 400, 413, 422), response.text
    if response.status_code == 201:
        job = response.json()
        assert job["state"] == "queued"
        client.delete(f"/v1/jobs/{job['id']}")
    assert math.isfinite(response.elapsed.total_seconds())

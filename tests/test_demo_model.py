"""The demo model that ships inside the package: present, small, the default, and it makes a talking video."""

from pathlib import Path

import av
import numpy as np

from multitalk.checkpoints import DEMO_MODEL, default_model, model_sampling
from multitalk.cli import main
from multitalk.media import probe
from multitalk.training.bundle import folder_size

REPO = Path(__file__).resolve().parents[1]


def test_bundled_model_is_the_default_and_slim():
    assert default_model() == DEMO_MODEL
    assert folder_size(DEMO_MODEL) < 40e6
    sampling = model_sampling(DEMO_MODEL)
    assert sampling["num_frames"] == 501 and sampling["motion_frames"] == 5 and sampling["fit_clips"]
    import json

    index = json.loads((DEMO_MODEL / "model_index.json").read_text())
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert index["model_version"] and f"Demo model {index['model_version']}" in changelog  # versioned, documented


def test_duet_example_renders_with_the_bundled_model(tmp_path, monkeypatch):
    """Without --model the CLI takes the bundled model; the duet comes out at its training size, with sound."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "duet.mp4"
    assert (
        main(["generate", "examples/duet.json", "-o", str(out), "--max-frames", "17", "--steps", "2", "--quiet"]) == 0
    )
    info = probe(out)
    assert info["video"]["frames"] == 17 and info["audio"]["codec"] == "aac"
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames[0].shape == (64, 64, 3)
    assert np.std(frames[-1]) > 10  # a picture, not a flat field

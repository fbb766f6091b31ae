# `make test` is the one command CI and newcomers run: it builds .venv from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: venv test bench clean demo train-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

# Two people talking, made on the CPU by the small model that ships inside the package
# (src/multitalk/demo_model; what it can and cannot do yet: docs/demo-model.md).
demo: venv
	$(VENV)/bin/multitalk generate examples/duet.json -o duet.mp4

bench: venv
	$(PY) benchmarks/step_time.py

# The demo model's full recipe from scratch (resumable: rerun after an interruption), ending in
# the slim copy that ships in the package. Sampling settings: 81-frame clips (fewer joins between clips
# than the 17 it was trained on), the official guidance scales, 10 steps (docs/demo-model.md, "Sampling settings").
DEMO_DATA := data/demo
DEMO_SAMPLING := '{"num_frames": 81, "motion_frames": 5, "steps": 10, "text_guidance": 5.0, "audio_guidance": 4.0, "shift": 3.0}'
train-demo: venv
	$(VENV)/bin/multitalk synth --out $(DEMO_DATA) --count 400 --people 1-3 --seconds 5 --size 64 --seed 0
	$(VENV)/bin/multitalk train configs/demo/vae_image.yaml --resume
	$(VENV)/bin/multitalk train configs/demo/vae.yaml --resume
	$(VENV)/bin/multitalk train configs/demo/base.yaml --resume
	$(VENV)/bin/multitalk train configs/demo/stage1.yaml --resume
	$(VENV)/bin/multitalk train configs/demo/stage2.yaml --resume
	$(PY) -m multitalk.training.bundle runs/demo/stage2/final src/multitalk/demo_model --sampling $(DEMO_SAMPLING)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

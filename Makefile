# `make test` is the one command CI and newcomers run: it builds .venv from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: venv test lint bench clean demo train-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

# Style, as CI checks it: ruff's lint rules and its formatter (pyproject.toml [tool.ruff]).
lint: venv
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

# Two people talking, made on the CPU by the small model that ships inside the package
# (src/multitalk/demo_model; what it can and cannot do yet: docs/demo-model.md).
demo: venv
	$(VENV)/bin/multitalk generate examples/duet.json -o duet.mp4

bench: venv
	$(PY) benchmarks/step_time.py

# The demo model's full recipe from scratch (resumable: rerun after an interruption), ending in
# the slim copy that ships in the package. Steps 1-4 make a talking model (the paper's two stages on
# our own small base); steps 5-8 teach it to follow "walks to the left/right" and bring its voices
# back (docs/demo-model.md). Every step is a `multitalk` command. Sampling settings: clips of 501 frames (a 20-s video is one clip: the joins
# between clips are where colours drift), fitted to the audio, the official guidance scales, 10 steps.
MT := $(VENV)/bin/multitalk
SYNTH := --people 1-3 --size 64
DEMO_SAMPLING := '{"num_frames": 501, "motion_frames": 5, "num_inference_steps": 10, "text_guidance": 5.0, "audio_guidance": 4.0, "shift": 3.0, "fit_clips": true}'
train-demo: venv
	$(MT) synth --out data/demo --count 400 $(SYNTH) --seconds 5 --seed 0
	$(MT) train configs/recipes/demo/01_vae_image.yaml --resume
	$(MT) train configs/recipes/demo/02_vae.yaml --resume
	$(MT) train configs/recipes/demo/03_base.yaml --resume
	$(MT) train configs/recipes/demo/04_stage1.yaml --resume
	$(MT) train configs/recipes/demo/05_stage2.yaml --resume
	$(MT) synth --out data/walks --count 300 $(SYNTH) --seconds 5 --seed 10000 --action walk
	$(MT) synth --out data/walks --count 60 $(SYNTH) --seconds 5 --seed 0
	$(MT) synth --out data/walks_2s --count 300 $(SYNTH) --seconds 2 --seed 20000 --action walk
	$(MT) synth --out data/twins_1p --twins 8 --people 1 --seconds 1 --size 64 --seed 30000
	$(MT) synth --out data/twins_60 --twins 60 --people 2-3 --seconds 1 --size 64 --seed 30000
	$(MT) synth --out data/twins --twins 200 --people 2-3 --seconds 1 --size 64 --seed 30000
	$(MT) train configs/recipes/demo/06_walks.yaml --resume
	$(MT) train configs/recipes/demo/07_walks_2s.yaml --resume
	$(MT) train configs/recipes/demo/08_twins.yaml --resume
	$(MT) train configs/recipes/demo/09_twins_2_3.yaml --resume
	$(MT) train configs/recipes/demo/10_mixed.yaml --resume
	$(MT) train configs/recipes/demo/11_voices.yaml --resume
	$(PY) -m multitalk.training.bundle runs/demo/stage7/final src/multitalk/demo_model --sampling $(DEMO_SAMPLING) --version 2026.12.0

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

"""Maintained benchmark scripts still run (their --smoke mode: tiny sizes, seconds), and the
benchmarks page is the rendering of their result files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
HELPERS = {"report.py", "render.py", "held_out.py"}  # imported by the scripts, not run
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in HELPERS)


def test_every_script_is_on_the_page():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from render import ORDER
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert sorted(f"{name}.py" for name in ORDER) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # nothing may land in the repository
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["script"] == script.removesuffix(".py") and data["tables"] and data["tables"][0]["rows"]
    assert "| --- |" not in result.stdout and "|---|" in result.stdout


def test_the_page_is_the_rendering_of_the_results():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "render.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""Maintained benchmark scripts still run (their --smoke mode: tiny sizes, seconds)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["load_time.py"])
def test_smoke(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "r.json").is_file() and "|" in result.stdout

"""Context parallelism (diffusers' Ulysses) gives the single-process output, exactly: two CPU
processes over gloo, shards that start mid-frame and a reference frame split across them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def torchrun() -> list[str]:
    found = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "torch.distributed.run"]


def test_ulysses_over_two_processes_equals_one_process(tmp_path):
    out = tmp_path / "diffs.json"
    run = subprocess.run(
        [*torchrun(), "--standalone", "--nproc_per_node", "2", str(HERE / "context_parallel_worker.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    diffs = json.loads(out.read_text())
    assert len(diffs) == 8
    assert all(d == 0.0 for d in diffs.values()), diffs


def test_what_cannot_be_split_is_refused_in_one_line():
    from multitalk.models.context_parallel import check_context_parallel

    with pytest.raises(ValueError, match="40 attention heads cannot be split over --ulysses 3"):
        check_context_parallel(40, 3, 1)
    with pytest.raises(ValueError, match="log-sum-exp"):
        check_context_parallel(40, 2, 2)
    check_context_parallel(40, 4, 2, backend="_native_cudnn")

"""Start `multitalk serve` as a separate process and wait until it answers (tests, benchmarks, scripts)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_background(
    model: str | Path, data: str | Path, *extra: str, port: int | None = None, timeout: float = 60.0
) -> tuple[subprocess.Popen, str]:
    """``(process, base_url)`` of a server on loopback that answers ``/v1/health``."""
    import httpx

    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "multitalk.cli",
            "serve",
            "--model",
            str(model),
            "--data",
            str(data),
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"multitalk serve exited with code {process.returncode}")
        try:
            httpx.get(base + "/v1/health", timeout=2)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"multitalk serve did not answer on {base} within {timeout:g} s")

"""A bounded load check of `multitalk serve` (loopback only): N concurrent submissions, none lost.

    python benchmarks/serve_load.py [--jobs 20] [--workers 1] [--postgres postgresql://...]
    python benchmarks/serve_load.py --smoke       # 2 jobs (run by the tests)

Starts a server with the tiny random model, submits all jobs at once from N threads, waits
for every one to finish and reports queue latency (submitted -> started), run time and the
total. Tiny-model jobs measure the service, not a model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from report import Report, add_arguments

from multitalk.app.background import serve_in_background
from multitalk.media import write_image, write_wav
from multitalk.random_pipeline import random_pipeline
from multitalk.synthetic import make_sample, random_scene


def run_load(folder: Path, sample, jobs: int, workers: int, queue: str | None = None) -> list:
    """One table row: ``jobs`` submitted at once to a server on loopback, with ``workers`` in the server
    (SQLite) or, with ``queue``, in as many `multitalk worker` processes beside a server that runs none."""
    import shutil
    import subprocess
    import sys

    data = folder / f"data_{'pg' if queue else 'sqlite'}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    extra = ["--workers", str(workers)] if queue is None else ["--workers", "0", "--queue", queue]
    server, base = serve_in_background(folder / "tiny", data, *extra)
    helpers = []
    if queue is not None:
        command = [sys.executable, "-m", "multitalk.cli", "worker", "--queue", queue, "--data", str(data)]
        command += ["--model", str(folder / "tiny"), "--heartbeat", "1"]
        helpers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
        for helper in helpers:  # timed from the moment every model is loaded, in both setups
            while "ready" not in (helper.stdout.readline() or "ready"):
                pass
    else:
        while httpx.get(base + "/v1/health").json()["models_loaded"] < workers:
            time.sleep(0.1)
    try:
        request = {
            "prompt": sample.scene.prompt,
            "bboxes": sample.scene.bboxes(),
            "num_inference_steps": 4,
            "num_frames": 9,
            "motion_frames": 3,
            "mode": "streaming",
        }

        def submit(_):
            files = [("image", ("ref.png", (folder / "ref.png").read_bytes()))] + [
                ("audio", (f"p{i}.wav", (folder / f"p{i}.wav").read_bytes())) for i in range(2)
            ]
            return httpx.post(base + "/v1/jobs", files=files, data={"request": json.dumps(request)}, timeout=60).json()[
                "id"
            ]

        start = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            ids = list(pool.map(submit, range(jobs)))
        submitted = time.perf_counter() - start
        finished = {}
        while len(finished) < len(ids):
            for job_id in ids:
                job = httpx.get(f"{base}/v1/jobs/{job_id}").json()
                if job["state"] in ("done", "failed", "cancelled"):
                    finished[job_id] = job
            time.sleep(0.2)
        total = time.perf_counter() - start
    finally:
        server.kill()
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=60)
    done = [j for j in finished.values() if j["state"] == "done"]
    waits = np.array([j["started"] - j["created"] for j in done])
    runs = np.array([j["finished"] - j["started"] for j in done])
    where = f"{workers} worker(s), " + ("PostgreSQL, separate processes" if queue else "SQLite, in the server")
    return [
        where,
        jobs,
        len(done),
        jobs - len(finished),
        f"{submitted:.2f} s",
        f"{np.percentile(waits, 50):.1f} s",
        f"{np.percentile(waits, 95):.1f} s",
        f"{np.percentile(runs, 50):.2f} s",
        f"{total:.1f} s",
        f"{len(done) / total * 60:.1f}",
    ]


def shared_cores_note(rows: list) -> str:
    """What the PostgreSQL row says when its workers run on the same machine as the SQLite one."""
    slower = float(rows[1][7].split()[0]) / float(rows[0][7].split()[0])
    return (
        "The PostgreSQL row runs its workers as separate `multitalk worker` processes on this machine, as a fleet "
        f"would on several; here they share its {os.cpu_count()} cores, so each job runs {slower:.1f}× as long as "
        "with one worker and the pair finishes fewer jobs per minute. On separate machines each worker has its own."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="workers of the SQLite row")
    parser.add_argument("--postgres", help="postgresql://... : also 2 `multitalk worker` processes on this queue")
    add_arguments(parser, "2 jobs")
    args = parser.parse_args()
    if args.smoke:
        args.jobs = 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        random_pipeline("tiny").save_pretrained(folder / "tiny")
        sample = make_sample(random_scene(5, 2, 1.0, "add", width=64, height=64, action=None))
        write_image(folder / "ref.png", sample.video[0])
        for i, track in enumerate(sample.tracks):
            write_wav(folder / f"p{i}.wav", track)
        rows = [run_load(folder, sample, args.jobs, args.workers)]
        if args.postgres:
            rows.append(run_load(folder, sample, args.jobs, 2, args.postgres))
    report = Report(
        "serve_load",
        "`multitalk serve` under load",
        f"{args.jobs} jobs submitted at once from {args.jobs} threads over loopback; the tiny random model, each job "
        "1 s of audio, 2 people, 4 steps, 9-frame clips. Each worker runs its jobs in order, so the queue wait grows "
        "linearly with the jobs ahead.",
    )
    report.table(
        [
            "setup",
            "jobs",
            "done",
            "lost",
            "all submitted in",
            "queue wait p50",
            "queue wait p95",
            "run p50",
            "total",
            "jobs per minute",
        ],
        rows,
        notes=shared_cores_note(rows) if args.postgres else "",
    )
    report.finish(args)


if __name__ == "__main__":
    main()

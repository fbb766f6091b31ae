"""A bounded load check of `multitalk serve` (loopback only): N concurrent submissions, none lost.

    python benchmarks/serve_load.py [--jobs 20] [--workers 1]
    python benchmarks/serve_load.py --smoke       # 2 jobs (run by the tests)

Starts a server with the tiny random model, submits all jobs at once from N threads, waits
for every one to finish and reports queue latency (submitted -> started), run time and the
total. Tiny-model jobs measure the service, not a model.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
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
        server, base = serve_in_background(folder / "tiny", folder / "data", "--workers", str(args.workers))
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
                return httpx.post(
                    base + "/v1/jobs", files=files, data={"request": json.dumps(request)}, timeout=60
                ).json()["id"]

            start = time.perf_counter()
            with ThreadPoolExecutor(args.jobs) as pool:
                ids = list(pool.map(submit, range(args.jobs)))
            submitted = time.perf_counter() - start
            jobs = {}
            while len(jobs) < len(ids):
                for job_id in ids:
                    job = httpx.get(f"{base}/v1/jobs/{job_id}").json()
                    if job["state"] in ("done", "failed", "cancelled"):
                        jobs[job_id] = job
                time.sleep(0.2)
            total = time.perf_counter() - start
        finally:
            server.kill()
    done = [j for j in jobs.values() if j["state"] == "done"]
    waits = np.array([j["started"] - j["created"] for j in done])
    runs = np.array([j["finished"] - j["started"] for j in done])
    p50, p95 = np.percentile(waits, 50), np.percentile(waits, 95)
    report = Report(
        "serve_load",
        "`multitalk serve` under load",
        f"{args.jobs} jobs submitted at once from {args.jobs} threads over loopback to a server with the tiny random "
        f"model and {args.workers} worker(s); each job 1 s of audio, 2 people, 4 steps, 9-frame clips. One worker "
        "runs the jobs in order, so the queue wait grows linearly.",
    )
    report.table(
        ["jobs", "done", "lost", "all submitted in", "queue wait p50", "queue wait p95", "run p50", "total"],
        [
            [
                args.jobs,
                len(done),
                args.jobs - len(jobs),
                f"{submitted:.2f} s",
                f"{p50:.1f} s",
                f"{p95:.1f} s",
                f"{np.percentile(runs, 50):.2f} s",
                f"{total:.1f} s",
            ]
        ],
    )
    report.finish(args)


if __name__ == "__main__":
    main()

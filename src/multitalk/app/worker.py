"""The worker: one loaded model, jobs in order, progress into the store, cancel between steps."""

from __future__ import annotations

import logging
import threading
import time

import torch

from ..constants import OLD_SETTING_NAMES
from ..media import read_audio, read_image, read_video_frames, write_video
from .jobs import HEARTBEAT_SECONDS, JobStore, worker_name

log = logging.getLogger("multitalk.serve")


class Cancelled(Exception):
    """The user asked this job to stop."""


class Interrupted(Exception):
    """The server is shutting down: the job goes back to the queue and resumes on the next start."""


class Lost(Exception):
    """The job was requeued under this worker (it was silent too long): another worker has it now."""


def run_job(
    pipe, store: JobStore, job: dict, stopping: threading.Event | None = None, worker: str | None = None
) -> None:
    folder = store.folder(job["id"])
    request = job["request"]
    settings = {OLD_SETTING_NAMES.get(k, k): v for k, v in request["settings"].items()}  # jobs queued before the rename
    image = video = None
    if request.get("video"):  # dubbing: frame 0, and for InfiniteTalk each clip's first frame
        step = settings["num_frames"] - settings["motion_frames"]
        infinitetalk = pipe.config.get("variant") == "infinitetalk"
        video = read_video_frames(folder / request["video"], keep=lambda j: j == 0 or (infinitetalk and j % step == 0))
    else:
        image = read_image(folder / request["image"])
    voices = [read_audio(folder / name) for name in request["audio"]]

    def on_step(pipe, step, t, kwargs):
        clip, clips, steps = kwargs["clip"], kwargs["clips"], pipe.num_timesteps
        progress = {
            "clip": clip + 1,
            "clips": clips,
            "step": step + 1,
            "steps": steps,
            "fraction": (clip * steps + step + 1) / (clips * steps),
        }
        stop = store.progress(job["id"], progress, worker)
        if stop:
            raise Lost if stop == "lost" else Cancelled
        if stopping is not None and stopping.is_set():
            raise Interrupted
        return {}

    out = pipe(
        image,
        voices,
        request["prompt"],
        video=video,
        negative_prompt=request.get("negative_prompt"),
        audio_type=request["audio_type"],
        bboxes=request.get("bboxes"),
        num_frames=settings["num_frames"],
        num_inference_steps=settings["num_inference_steps"],
        text_guidance=settings["text_guidance"],
        audio_guidance=settings["audio_guidance"],
        shift=settings["shift"],
        generator=torch.Generator().manual_seed(settings["seed"]),
        mode=settings["mode"],
        motion_frames=settings["motion_frames"],
        max_frames=settings.get("max_frames", 1000),
        work_dir=folder / "work",
        resume=True,
        callback_on_step_end=on_step,
    )
    write_video(folder / "video.mp4", out.frames, out.fps, audio=out.audio)


# Model loading patches torch globally for a moment (accelerate's empty-weight init): one at a time.
_LOADING = threading.Lock()


class Worker(threading.Thread):
    """One model, jobs one after the other. With a shared queue it also beats a heartbeat while it
    runs a job and requeues the jobs of workers (on any machine) that stopped beating."""

    def __init__(self, store: JobStore, load_pipeline, poll_seconds: float = 0.2, heartbeat: float = HEARTBEAT_SECONDS):
        super().__init__(daemon=True, name="multitalk-worker")
        self.store, self.load_pipeline, self.poll_seconds, self.heartbeat = (
            store,
            load_pipeline,
            poll_seconds,
            heartbeat,
        )
        self.pipe = None
        self.stopping = threading.Event()
        self.problem: str | None = None  # why this worker cannot record results right now (health says degraded)

    def run(self) -> None:
        with _LOADING:
            self.pipe = self.load_pipeline()
        name, last_reap = worker_name(), 0.0
        while not self.stopping.is_set():
            if self.store.shared and time.monotonic() - last_reap > self.heartbeat:
                self.store.reap()
                last_reap = time.monotonic()
            try:
                job = self.store.next_queued(name)
            except Exception as err:  # the queue cannot be read or written (a full disk, a lost database)
                self._trouble(err)
                self.stopping.wait(max(self.poll_seconds, 1.0))
                continue
            if job is None:
                self.stopping.wait(self.poll_seconds)
                continue
            self._run(job, name)

    def _trouble(self, err: Exception) -> None:
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        if self.problem is None:
            log.error("the job queue cannot be written: %s", reason)
        self.problem = f"{type(err).__name__}: {reason}"

    def _record(self, update, *args, **kwargs) -> None:
        """A store write that must not kill the worker: on failure the worker reports itself degraded."""
        try:
            update(*args, **kwargs)
            self.problem = None
        except Exception as err:
            self._trouble(err)

    def _run(self, job: dict, name: str) -> None:
        done = threading.Event()

        def beat() -> None:  # steps can take minutes on a large model: the heartbeat has its own thread
            while not done.wait(self.heartbeat):
                self.store.beat(job["id"], name)

        beating = threading.Thread(target=beat, daemon=True, name="multitalk-heartbeat")
        beating.start()
        try:
            run_job(self.pipe, self.store, job, self.stopping, name)
            self._record(self.store.finish, job["id"], "done", worker=name)
        except Interrupted:
            self._record(self.store.requeue, job["id"])
        except Cancelled:
            self._record(self.store.finish, job["id"], "cancelled", worker=name)
        except Lost:
            log.warning("job %s was requeued while this worker ran it; another worker goes on", job["id"])
        except Exception as err:  # a failed job must not take the worker down
            log.exception("job %s failed", job["id"])
            reason = getattr(err, "strerror", None) if isinstance(err, OSError) else None
            message = f"{type(err).__name__}: {reason or err}"  # an OSError without the server's paths
            self._record(self.store.finish, job["id"], "failed", message, worker=name)
        finally:
            done.set()

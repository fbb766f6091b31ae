"""`multitalk serve`: the web page and the JSON API in one FastAPI app.

FastAPI + uvicorn rather than Gradio: the API is the product for integrators (OpenAPI schema,
plain multipart uploads, 4xx with messages), the page is one static file on top of the same
API, and the job queue lives in our own SQLite store so it survives restarts — none of
which needs a UI framework's own queue and state.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from ..constants import OLD_SETTING_NAMES
from ..errors import MultiTalkInputError
from .jobs import JobStore
from .worker import Worker

STATIC = Path(__file__).parent / "static"


def default_settings(sampling: dict | None = None) -> dict:
    """What a job gets for settings its request leaves out: the model's sampling settings, else the official."""
    from ..pipeline import sampling_settings

    chosen = sampling_settings(sampling)
    return {
        "num_inference_steps": chosen["num_inference_steps"],
        "seed": 42,
        "mode": "streaming",
        "num_frames": chosen["num_frames"],
        "motion_frames": chosen["motion_frames"],
        "text_guidance": chosen["text_guidance"],
        "audio_guidance": chosen["audio_guidance"],
        "shift": chosen["shift"],
    }


@dataclass
class Limits:
    max_file_mb: float = 50.0
    max_audio_seconds: float = 300.0
    max_pixels: int = 4096 * 4096
    max_people: int = 8
    max_steps: int = 1000  # sampling steps a job may ask for (time grows with them)


def _parse_request(text: str, defaults: dict, limits: Limits) -> dict:
    """The ``request`` form field, checked by the shared schema (``schema.py``): a 4xx names what is wrong."""
    from ..schema import JobRequest, check_settings, parse_job_request, parse_json_object

    if len(text or "") > 100_000:
        raise HTTPException(413, "request is over 100 kB; it holds a prompt and settings, not media")
    try:
        data = parse_json_object(text or "{}", "request")
        for old, new in OLD_SETTING_NAMES.items():  # the names of the previous release, still accepted
            if old in data:
                if new in data:
                    raise MultiTalkInputError(f"give {new} only ({old} is its old name)")
                data[new] = data.pop(old)
        unknown = set(data) - set(JobRequest.model_fields) - set(defaults)
        if unknown:
            known = sorted(set(JobRequest.model_fields) | set(defaults))
            raise MultiTalkInputError(f"unknown fields {sorted(unknown)[:5]}; known: {known}")
        given = {k: data.pop(k) for k in set(defaults) & set(data)}
        job = parse_job_request(data)
        settings = check_settings({**defaults, **given}, max_steps=limits.max_steps).model_dump()
    except MultiTalkInputError as err:
        raise HTTPException(400, str(err)) from None
    return {
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "audio_type": job.audio_type,
        "bboxes": job.boxes(),
        "settings": {k: settings[k] for k in defaults},
    }


def create_app(
    data_dir: str | Path,
    load_pipeline,
    token: str | None = None,
    limits: Limits | None = None,
    examples: str | Path | None = None,
    workers: int = 1,
    sampling: dict | None = None,
    queue: str | None = None,
    buckets="multitalk-480",
) -> FastAPI:
    """``load_pipeline()`` is called once per worker thread (each holds its own model); ``sampling``:
    the model's own sampling settings (``checkpoints.model_sampling``), the defaults of every job;
    ``buckets``: its size table (``loading.model_buckets``), which sets a job's memory cost."""
    defaults = default_settings(sampling)
    store = JobStore(data_dir, queue=queue)
    limits = limits or Limits()
    pool = [Worker(store, load_pipeline) for _ in range(workers)]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for worker in pool:
            worker.start()
        yield
        for worker in pool:  # a running job stops after its current step; --resume-style state is on disk
            worker.stopping.set()
        for worker in pool:
            worker.join(timeout=30)

    app = FastAPI(
        title="multitalk",
        version="1",
        description="Videos of people talking to each other.",
        lifespan=lifespan,
        # with a token, the API description is served behind it too (_add_docs_routes)
        docs_url=None if token else "/docs",
        redoc_url=None,
        openapi_url=None if token else "/openapi.json",
    )
    app.state.store = store
    app.state.workers = pool
    guarded = [Depends(_authorizer(token))]
    _add_protections(app, store, limits)
    if token:
        _add_docs_routes(app, guarded)
    _add_info_routes(app, defaults, guarded)
    _add_submit_route(app, store, defaults, limits, guarded, buckets)
    _add_job_routes(app, store, guarded)
    _add_example_routes(app, Path(examples) if examples else None, guarded)
    return app


def _authorizer(token: str | None):
    """The dependency every guarded route runs. With a token: ``Authorization: Bearer <token>``, compared in
    constant time (GETs may also carry it as ``?token=``: a ``<video src>`` cannot send headers). Without one:
    requests that change something must come from the page's own origin, so another site cannot send them."""

    def authorized(request: Request) -> None:
        if token is None:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                origin = request.headers.get("origin")
                if origin and urlsplit(origin).netloc != request.headers.get("host"):
                    raise HTTPException(403, "cross-site request refused: send it from this server's own page")
            return
        header = request.headers.get("authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        if given is None and request.method in ("GET", "HEAD"):
            given = request.query_params.get("token")
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer <token>'")

    return authorized


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
PAGE_POLICY = (  # the page's own scripts and styles are inline; media come from this server or the page's blobs
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; frame-ancestors 'none'"
)


def _add_protections(app: FastAPI, store: JobStore, limits: Limits) -> None:
    """Security headers on every answer, the upload size enforced while the body streams in, and storage
    errors (a full disk) answered in one line instead of a 500 with a traceback."""
    most = int(limits.max_file_mb * 1e6 * (limits.max_people + 1) + 1e6)  # every file at its limit, plus the form

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith("/docs"):  # Swagger UI loads its scripts from a CDN
            response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    app.add_middleware(BodyLimit, most=most)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, err: Exception):
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        return JSONResponse({"detail": f"the server cannot write its data ({reason}); try again later"}, 507)


class BodyLimit:
    """ASGI middleware: answer 413 when a request declares more than ``most`` bytes (before reading any), or as
    soon as its body passes them whatever it declared (a chunked upload declares nothing), and stop the app
    from reading or answering more."""

    def __init__(self, app, most: int):
        self.app, self.most = app, most

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = JSONResponse({"detail": f"request body is over {self.most / 1e6:.0f} MB"}, status_code=413)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.most:
            return await too_large(scope, receive, send)
        seen, answered = 0, False

        async def limited():
            nonlocal seen, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                seen += len(message.get("body", b""))
                if seen > self.most:
                    answered = True
                    await too_large(scope, receive, send)
                    return {"type": "http.disconnect"}  # the app stops reading: the client is gone for it
            return message

        async def quiet_after_answer(message):
            if not answered:
                await send(message)

        try:
            await self.app(scope, limited, quiet_after_answer)
        except Exception:
            if not answered:
                raise


def _add_docs_routes(app: FastAPI, guarded: list) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    def docs(request: Request) -> HTMLResponse:
        token = request.query_params.get("token", "")
        return get_swagger_ui_html(openapi_url=f"/openapi.json?token={quote(token)}", title="multitalk API")


def _add_info_routes(app: FastAPI, defaults: dict, guarded: list) -> None:
    @app.get("/v1/health")
    def health() -> JSONResponse:
        """503 with the reasons when a worker cannot write its results (a full disk, say)."""
        problems = [w.problem for w in app.state.workers if w.problem]
        loaded = sum(w.pipe is not None for w in app.state.workers)
        if problems:
            return JSONResponse({"ok": False, "degraded": problems, "models_loaded": loaded}, status_code=503)
        return JSONResponse({"ok": True, "models_loaded": loaded})

    @app.get("/v1/settings", dependencies=guarded)
    def settings() -> dict:
        """The settings a job gets when its request leaves them out (the page starts from these)."""
        return defaults

    @app.get("/", response_class=HTMLResponse, dependencies=guarded)
    def page() -> str:
        return (STATIC / "index.html").read_text()


async def _save(upload: UploadFile, folder: Path, name: str, limits: Limits) -> Path:
    data = await upload.read()
    if len(data) > limits.max_file_mb * 1e6:
        raise HTTPException(413, f"{upload.filename} is larger than {limits.max_file_mb:g} MB")
    if not data:
        raise HTTPException(400, f"{upload.filename or name} is empty")
    path = folder / name
    path.write_bytes(data)
    return path


def _check_job(spec: dict, reference: Path, is_video: bool, audio_paths: list[Path], limits: Limits, buckets) -> None:
    """Every rule a job's files and settings must follow, checked before it enters the queue."""
    from ..conditioning.people import nearest_bucket
    from ..media import read_audio, read_image, read_video_frames
    from ..memory import check_clip_memory
    from ..pipeline import check_request

    if is_video:
        pixels = read_video_frames(reference, keep=lambda j: j == 0)[0]
    else:
        pixels = read_image(reference, max_pixels=limits.max_pixels)
    if pixels.shape[0] * pixels.shape[1] > limits.max_pixels:
        raise HTTPException(
            413, f"image has {pixels.shape[0] * pixels.shape[1]} pixels; the limit is {limits.max_pixels}"
        )
    voices = [read_audio(p) for p in audio_paths]
    longest = max(v.size for v in voices) / 16000
    if longest > limits.max_audio_seconds:
        raise HTTPException(413, f"audio lasts {longest:.0f} s; the limit is {limits.max_audio_seconds:g} s")
    s = spec["settings"]
    s["max_frames"] = int(limits.max_audio_seconds * 25) + 1  # the whole audio, up to the upload limit
    frames = s["num_frames"] if s["mode"] == "clip" else min(math.ceil(longest * 25), s["max_frames"])
    check_clip_memory(s["num_frames"], frames, *nearest_bucket(*pixels.shape[:2], buckets))
    check_request(pixels, voices, spec["audio_type"], spec["bboxes"])


def _add_submit_route(
    app: FastAPI, store: JobStore, defaults: dict, limits: Limits, guarded: list, buckets="multitalk-480"
) -> None:
    @app.post("/v1/jobs", status_code=201, dependencies=guarded)
    async def submit(
        image: UploadFile | None = File(None),
        audio: list[UploadFile] = File(...),
        request: str = Form("{}"),
        video: UploadFile | None = File(None),
    ) -> dict:
        """``image`` (a reference picture) or ``video`` (a video to dub), one ``audio`` per person."""
        if (image is None) == (video is None):
            raise HTTPException(400, "give the reference as image or as video (to dub), one of them")
        if len(audio) > limits.max_people:
            raise HTTPException(400, f"at most {limits.max_people} people (audio files) per job")
        spec = _parse_request(request, defaults, limits)
        job_id = store.create()
        folder = store.folder(job_id)
        reference, kind = (image, "image") if image is not None else (video, "video")
        try:
            suffix = Path(reference.filename or "").suffix or (".png" if kind == "image" else ".mp4")
            # a video to dub is kept as source.*: the job's result is video.mp4 beside it
            stem = "image" if kind == "image" else "source"
            reference_path = await _save(reference, folder, f"{stem}{suffix}", limits)
            audio_paths = [
                await _save(a, folder, f"person{i + 1}{Path(a.filename or '.wav').suffix or '.wav'}", limits)
                for i, a in enumerate(audio)
            ]
            _check_job(spec, reference_path, kind == "video", audio_paths, limits, buckets)
        except MultiTalkInputError as err:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(400, _without_paths(str(err), folder, store.root)) from None
        except BaseException:  # whatever stops a job from entering the queue takes its folder with it
            shutil.rmtree(folder, ignore_errors=True)
            raise
        spec.update(audio=[p.name for p in audio_paths])
        spec[kind] = reference_path.name
        store.enqueue(job_id, spec)
        return _public(store, store.get(job_id))


def _without_paths(message: str, *folders: Path) -> str:
    """An error as the client may see it: file names, never where they live on the server."""
    for folder in folders:
        message = message.replace(str(folder) + "/", "").replace(str(folder), "<data>")
    return message


def _add_job_routes(app: FastAPI, store: JobStore, guarded: list) -> None:
    def found(job_id: str) -> dict:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/v1/jobs", dependencies=guarded)
    def jobs() -> list[dict]:
        return [_public(store, job) for job in store.list()]

    @app.get("/v1/jobs/{job_id}", dependencies=guarded)
    def job(job_id: str) -> dict:
        return _public(store, found(job_id))

    @app.get("/v1/jobs/{job_id}/video", dependencies=guarded)
    def video(job_id: str) -> FileResponse:
        state = found(job_id)["state"]
        if state != "done":
            raise HTTPException(409, f"job {job_id} is {state}; the video exists once it is done")
        return FileResponse(store.folder(job_id) / "video.mp4", media_type="video/mp4", filename=f"{job_id}.mp4")

    @app.delete("/v1/jobs/{job_id}", dependencies=guarded)
    def cancel(job_id: str) -> dict:
        state = store.cancel(job_id)
        if state is None:
            raise HTTPException(404, f"no job {job_id}")
        return {"id": job_id, "state": state}


def _add_example_routes(app: FastAPI, examples_dir: Path | None, guarded: list) -> None:
    @app.get("/v1/examples", dependencies=guarded)
    def example_list() -> list[dict]:
        if examples_dir is None or not examples_dir.is_dir():
            return []
        return [{"name": p.stem, **json.loads(p.read_text())} for p in sorted(examples_dir.glob("*.json"))]

    @app.get("/examples/{path:path}", dependencies=guarded)
    def example_file(path: str) -> FileResponse:
        if examples_dir is None:
            raise HTTPException(404, "no examples folder")
        target = (examples_dir / path).resolve()
        if examples_dir.resolve() not in target.parents or not target.is_file():
            raise HTTPException(404, f"no example file {path}")
        return FileResponse(target)


def _public(store: JobStore, job: dict) -> dict:
    return {
        "id": job["id"],
        "state": job["state"],
        "created": job["created"],
        "started": job["started"],
        "finished": job["finished"],
        "progress": job["progress"],
        "error": job["error"],
        "queue_position": store.queue_position(job["id"]),
        "prompt": job["request"]["prompt"],
        "video": f"/v1/jobs/{job['id']}/video" if job["state"] == "done" else None,
    }

"""A job queue that survives restarts: one row per job + one folder per job under ``--data``.

A job's folder holds its inputs, the pipeline's work folder (finished clips) and the video.
Two databases hold the rows:

* SQLite (WAL), the embedded default, for one machine: a job found ``running`` when the server
  starts was interrupted, so it goes back to the queue;
* PostgreSQL (``--queue postgresql://...``), for many machines sharing one queue and one
  ``--data`` folder: workers claim jobs with ``SELECT ... FOR UPDATE SKIP LOCKED`` (no job is
  taken twice) and beat a heartbeat while they run one; a job whose worker stopped beating
  goes back to the queue.

Either way a requeued job resumes from its last finished clip, and a job its worker died under
``MAX_CRASHES`` times (out of memory, killed) is marked failed with the reason, so it cannot take
the workers down again and again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
MAX_CRASHES = 2
HEARTBEAT_SECONDS = 10.0  # how often a running job's worker says it is alive
DEAD_AFTER_SECONDS = 60.0  # a running job whose worker has been silent this long is requeued

COLUMNS = """
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created {real} NOT NULL,
    started {real},
    finished {real},
    request TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{{}}',
    error TEXT,
    cancel INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat {real}
"""
# columns a SQLite queue written by an older version lacks (SQLite's types)
ADDED = {
    "crashes": "INTEGER NOT NULL DEFAULT 0",
    "claims": "INTEGER NOT NULL DEFAULT 0",
    "worker": "TEXT",
    "heartbeat": "REAL",
}
CRASHED = (
    f"the worker stopped {MAX_CRASHES} times while running this job (out of memory or killed?); "
    "it is not resumed again — submit it with fewer frames or steps"
)


def worker_name() -> str:
    """Which worker holds a job: host, process and thread, unique across machines."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class _SQLite:
    placeholder = "?"

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"CREATE TABLE IF NOT EXISTS jobs ({COLUMNS.format(real='REAL')})")
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in ADDED.items():  # a queue written by an older version
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def execute(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, args).fetchall()]

    def claim(self, worker: str, now: float) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE state='queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            rows = self._db.execute(
                "UPDATE jobs SET state='running', started=?, worker=?, heartbeat=?, claims=claims+1 "
                "WHERE id=? AND state='queued' RETURNING *",
                (now, worker, now, row["id"]),
            ).fetchall()
            return dict(rows[0]) if rows else None


class _Postgres:
    placeholder = "%s"

    def __init__(self, url: str):
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError:
            raise RuntimeError("--queue postgresql://... needs psycopg 3: pip install 'psycopg[binary]'") from None
        self._psycopg, self._rows = psycopg, dict_row
        self._url = url
        self._local = threading.local()  # one connection per thread: psycopg connections are not shared
        self.execute(f"CREATE TABLE IF NOT EXISTS jobs ({COLUMNS.format(real='DOUBLE PRECISION')})")
        self.execute("CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (created) WHERE state = 'queued'")

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._psycopg.connect(self._url, autocommit=True, row_factory=self._rows)
            self._local.connection = connection
        return connection

    def execute(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._connection().cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), args)
            return [dict(row) for row in cursor.fetchall()] if cursor.description else []

    def claim(self, worker: str, now: float) -> dict | None:
        rows = self.execute(
            "UPDATE jobs SET state='running', started=?, worker=?, heartbeat=?, claims=claims+1 WHERE id = "
            "(SELECT id FROM jobs WHERE state='queued' ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *",
            (now, worker, now),
        )
        return rows[0] if rows else None


class JobStore:
    """The queue and the job folders. ``queue``: None (SQLite in ``data_dir``) or a PostgreSQL URL."""

    def __init__(self, data_dir: str | Path, queue: str | None = None, dead_after: float = DEAD_AFTER_SECONDS):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shared = queue is not None
        self.dead_after = dead_after
        if queue is None:
            self._db = _SQLite(self.root / "jobs.sqlite3")
            self._requeue_where("state='running'")  # one machine: whatever ran when it stopped was interrupted
        elif queue.startswith(("postgresql://", "postgres://")):
            self._db = _Postgres(queue)
            self.reap()
        else:
            raise ValueError(f"unknown --queue {queue!r}; give postgresql://USER@HOST/DB (or leave it out for SQLite)")

    def folder(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def _execute(self, sql: str, args: tuple = ()) -> list[dict]:
        return self._db.execute(sql, args)

    def create(self) -> str:
        """Reserve an id and a folder; the job joins the queue only when ``enqueue`` is called."""
        job_id = uuid.uuid4().hex[:12]
        self.folder(job_id).mkdir(parents=True)
        return job_id

    def enqueue(self, job_id: str, request: dict) -> None:
        self._execute(
            "INSERT INTO jobs (id, state, created, request) VALUES (?, 'queued', ?, ?)",
            (job_id, time.time(), json.dumps(request)),
        )

    def get(self, job_id: str) -> dict | None:
        rows = self._execute("SELECT * FROM jobs WHERE id=?", (job_id,))
        return _as_job(rows[0]) if rows else None

    def list(self, limit: int = 100) -> list[dict]:
        return [_as_job(r) for r in self._execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]

    def next_queued(self, worker: str | None = None) -> dict | None:
        """Claim the oldest queued job for ``worker`` (marks it running); None when the queue is empty."""
        row = self._db.claim(worker or worker_name(), time.time())
        return _as_job(row) if row else None

    def beat(self, job_id: str, worker: str) -> None:
        """The worker running ``job_id`` is alive."""
        self._execute(
            "UPDATE jobs SET heartbeat=? WHERE id=? AND worker=? AND state='running'", (time.time(), job_id, worker)
        )

    def reap(self) -> int:
        """Requeue (or fail, after ``MAX_CRASHES``) the running jobs whose worker stopped beating."""
        return self._requeue_where(
            "state='running' AND (heartbeat IS NULL OR heartbeat < ?)", (time.time() - self.dead_after,)
        )

    def _requeue_where(self, where: str, args: tuple = ()) -> int:
        rows = self._execute(f"UPDATE jobs SET crashes=crashes+1, worker=NULL WHERE {where} RETURNING id", args)
        ids = tuple(row["id"] for row in rows)
        for job_id in ids:
            self._execute(
                "UPDATE jobs SET state=CASE WHEN crashes>=? THEN 'failed' ELSE 'queued' END, "
                "finished=CASE WHEN crashes>=? THEN ? ELSE finished END, "
                "error=CASE WHEN crashes>=? THEN ? ELSE error END WHERE id=? AND state='running'",
                (MAX_CRASHES, MAX_CRASHES, time.time(), MAX_CRASHES, CRASHED, job_id),
            )
        return len(ids)

    def progress(self, job_id: str, progress: dict, worker: str | None = None) -> str | None:
        """Record progress; returns why the job must stop: "lost" (gone, or no longer this worker's), "cancel"
        (asked to), or None to go on."""
        rows = self._execute(
            "UPDATE jobs SET progress=?, heartbeat=? WHERE id=? RETURNING cancel, worker, state",
            (json.dumps(progress), time.time(), job_id),
        )
        if not rows or (worker is not None and (rows[0]["worker"] != worker or rows[0]["state"] != "running")):
            return "lost"
        return "cancel" if rows[0]["cancel"] else None

    def finish(self, job_id: str, state: str, error: str | None = None, worker: str | None = None) -> None:
        if worker is None:
            self._execute(
                "UPDATE jobs SET state=?, finished=?, error=? WHERE id=?", (state, time.time(), error, job_id)
            )
        else:  # only while the job is still this worker's (a job requeued under a silent worker is someone else's)
            self._execute(
                "UPDATE jobs SET state=?, finished=?, error=? WHERE id=? AND worker=? AND state='running'",
                (state, time.time(), error, job_id, worker),
            )

    def requeue(self, job_id: str) -> None:
        self._execute("UPDATE jobs SET state='queued', worker=NULL WHERE id=? AND state='running'", (job_id,))

    def cancel(self, job_id: str) -> str | None:
        """Queued jobs stop at once, running ones between steps, ended ones are deleted with their
        files; returns the new state."""
        job = self.get(job_id)
        if job is None:
            return None
        if job["state"] == "queued":
            self.finish(job_id, "cancelled")
            return "cancelled"
        if job["state"] == "running":
            self._execute("UPDATE jobs SET cancel=1 WHERE id=?", (job_id,))
            return "cancelling"
        # finished, failed or cancelled: the inputs and the video go
        self._execute("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return "deleted"

    def queue_position(self, job_id: str) -> int | None:
        job = self.get(job_id)
        if job is None or job["state"] != "queued":
            return None
        rows = self._execute(
            "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running') AND created < ?", (job["created"],)
        )
        return int(rows[0]["n"])


def _as_job(row: dict) -> dict:
    job = dict(row)
    job["request"] = json.loads(job["request"])
    job["progress"] = json.loads(job["progress"] or "{}")
    job["cancel"] = bool(job["cancel"])
    return job

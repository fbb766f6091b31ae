"""A job queue that survives restarts: SQLite (WAL) rows + one folder per job.

A job's folder holds its inputs, the pipeline's work folder (finished clips) and the video.
A job found ``running`` at start-up was interrupted: it goes back to the queue and the
pipeline resumes it from its last finished clip — once. A job the process died under twice (out of
memory, killed) is marked failed with the reason, so it cannot take the server down at every start.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    request TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    cancel INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0
)
"""
MAX_CRASHES = 2


class JobStore:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "crashes" not in columns:  # a queue written by an older version
            self._db.execute("ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0")
        with self._lock:  # whatever was running when the last process died: back in line, or failed
            self._db.execute("UPDATE jobs SET crashes=crashes+1 WHERE state='running'")
            self._db.execute(
                "UPDATE jobs SET state='failed', finished=?, error=? WHERE state='running' AND crashes>=?",
                (
                    time.time(),
                    f"the server stopped {MAX_CRASHES} times while running this job (out of memory or "
                    "killed?); it is not resumed again — submit it with fewer frames or steps",
                    MAX_CRASHES,
                ),
            )
            self._db.execute("UPDATE jobs SET state='queued' WHERE state='running'")

    def folder(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def _execute(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

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
        return _as_dict(rows[0]) if rows else None

    def list(self, limit: int = 100) -> list[dict]:
        return [_as_dict(r) for r in self._execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]

    def next_queued(self) -> dict | None:
        """Claim the oldest queued job (marks it running)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE state='queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE jobs SET state='running', started=? WHERE id=?", (time.time(), row["id"]))
            return _as_dict(row) | {"state": "running"}

    def progress(self, job_id: str, progress: dict) -> bool:
        """Record progress; returns whether the job was asked to stop."""
        rows = self._execute("UPDATE jobs SET progress=? WHERE id=? RETURNING cancel", (json.dumps(progress), job_id))
        return bool(rows and rows[0]["cancel"])

    def finish(self, job_id: str, state: str, error: str | None = None) -> None:
        self._execute("UPDATE jobs SET state=?, finished=?, error=? WHERE id=?", (state, time.time(), error, job_id))

    def requeue(self, job_id: str) -> None:
        self._execute("UPDATE jobs SET state='queued' WHERE id=? AND state='running'", (job_id,))

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


def _as_dict(row: sqlite3.Row) -> dict:
    job = dict(row)
    job["request"] = json.loads(job["request"])
    job["progress"] = json.loads(job["progress"] or "{}")
    job["cancel"] = bool(job["cancel"])
    return job

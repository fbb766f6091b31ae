"""A private PostgreSQL server for the shared-queue tests: ``MULTITALK_TEST_POSTGRES`` when set,
else one started from Debian's ``postgresql`` binaries in a temporary folder (as the ``postgres``
user when the tests run as root: initdb refuses root), listening on a Unix socket only."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager

from multitalk.app.background import free_port


def _binaries() -> str | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.isfile(os.path.join(folder, "initdb")):
            return folder
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@contextmanager
def postgres_url():
    """Yields a ``postgresql://`` URL of an empty database, or None (with the reason) when there is no server."""
    given = os.environ.get("MULTITALK_TEST_POSTGRES")
    if given:
        yield given, None
        return
    binaries = _binaries()
    if binaries is None:
        yield None, "PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)"
        return
    folder = tempfile.mkdtemp(prefix="mt-pg-", dir="/tmp")
    os.chmod(folder, 0o755)
    run_as = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            yield None, "running as root and there is no postgres user to start PostgreSQL as"
            return
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = os.path.join(folder, "data")
    init = subprocess.run(
        [*run_as, f"{binaries}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
    )
    start = subprocess.run(
        [*run_as, f"{binaries}/pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-w", "start"]
        + ["-o", f"-k {folder} -p {port} -c listen_addresses=''"],
        capture_output=True,
        text=True,
    )
    if init.returncode or start.returncode:
        yield None, f"PostgreSQL did not start: {(init.stderr + start.stderr).strip()[-300:]}"
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        yield f"postgresql://postgres@/postgres?host={folder}&port={port}", None
    finally:
        subprocess.run([*run_as, f"{binaries}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

"""What every benchmark shares: its tables printed as markdown and kept as ``results/NAME.json``.

``docs/benchmarks.md`` is rendered from those files (``python benchmarks/render.py``), so the
page always shows each script's latest full run with the command, date and machine that made
it. ``--smoke`` runs (tiny sizes, seconds: the tests run them) write only where ``--json`` says.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def add_arguments(parser: argparse.ArgumentParser, smoke: str = "tiny sizes: checks the script runs") -> None:
    parser.add_argument("--smoke", action="store_true", help=smoke)
    parser.add_argument("--json", type=Path, help="write the result here (default: results/NAME.json, not in --smoke)")
    parser.add_argument("--label", help="keep this run beside the main one: results/NAME-LABEL.json")


def machine() -> str:
    """The machine in words: CPU, cores, memory, and the GPU and library versions that set the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores"]
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        parts.append(f"{memory / 2**30:.0f} GiB")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


@dataclass
class Table:
    columns: list[str]
    rows: list[list]
    title: str = ""  # a line above the table
    notes: str = ""  # a paragraph below it


@dataclass
class Report:
    """One run's result. ``about``: what was measured, how (a paragraph under the command line)."""

    script: str
    title: str
    about: str = ""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)  # the raw numbers behind the tables, for other tools
    command: str = ""
    date: str = ""
    machine: str = ""

    def table(self, columns: list[str], rows: list[list], title: str = "", notes: str = "") -> None:
        self.tables.append(Table(list(columns), [list(r) for r in rows], title, notes))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self, args: argparse.Namespace) -> Path | None:
        """Print the markdown; write the JSON (``--json``, else ``results/`` unless ``--smoke``)."""
        self.command = self.command or "python " + " ".join(
            shlex.quote(a) for a in [f"benchmarks/{self.script}.py", *sys.argv[1:]] if a
        )
        self.date = self.date or datetime.date.today().isoformat()
        self.machine = self.machine or machine()
        print(to_markdown(self))
        path = args.json
        if path is None and not args.smoke:
            path = RESULTS / (f"{self.script}-{args.label}.json" if args.label else f"{self.script}.json")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n")
        return path


def _cell(value) -> str:
    """Cells are written as the script formatted them (it knows how many digits mean something)."""
    return str(value).replace("|", "/")


def to_markdown(report: Report | dict, heading: bool = False) -> str:
    data = asdict(report) if isinstance(report, Report) else report
    out = []
    if heading:
        out += [f"## {data['title']} (`benchmarks/{data['script']}.py`)", ""]
    out += [f"`{data['command']}` — {data['date']}, {data['machine']}.", ""]
    if data["about"]:
        out += [data["about"], ""]
    for table in data["tables"]:
        if table["title"]:
            out += [table["title"], ""]
        out.append("| " + " | ".join(table["columns"]) + " |")
        out.append("|" + "---|" * len(table["columns"]))
        out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table["rows"]]
        out.append("")
        if table["notes"]:
            out += [table["notes"], ""]
    for note in data["notes"]:
        out += [note, ""]
    return "\n".join(out).rstrip() + "\n"

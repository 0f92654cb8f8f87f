"""Every shell example in README.md and docs/*.md runs as written on the demo's data.

Each document's shell blocks (```bash, ```sh, ```shell, ```console) run in order, each in its own
``bash -eo pipefail``, in a copy of a folder where ``allpfit-etl demo`` ran, with this Python's
commands (``allpfit-etl``, ``dagster``, ``python``) first on PATH. What a block exports and where it
``cd``s carry over to the next block, as in one terminal. A block is skipped only when the line
before it says why: ``<!-- not-run: reason -->`` (pip installs, the whole suite, long-running
servers, a real OpenAI key). Processes a block leaves in the background (the fake OpenAI server)
are stopped when its document ends.

Also: the ``dagster dev`` line that ``demo`` prints, and the README's, load the code location from
the demo's folder (``dagster definitions validate`` with the same arguments: ``dagster dev`` would
serve until stopped).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->")
BLOCK_TIMEOUT_S = 300
# An example that exits 0 can still miss the demo's data (dates outside its days): these say so.
MISSED_THE_DATA = re.compile(r"\b0 run\(s\)|\b0 conversations extracted|nothing to compare yet|no tenants")
# Variables that would point the examples away from the demo's folder or at real services.
FOREIGN_ENV = re.compile(r"(ALLPFIT_|DAGSTER_|OPENAI_|CHATWOOT_DATABASE_URL|ANALYTICS_DATABASE_URL|ALERT_WEBHOOK_URL)")

pytestmark = pytest.mark.xdist_group("docs_examples")  # one demo folder for every document


@dataclass(frozen=True)
class ShellBlock:
    document: str
    line: int  # of the opening fence, 1-based
    code: str
    not_run: str | None  # the reason given, for a block marked not to run here

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def shell_blocks(markdown: str, document: str = "<doc>") -> list[ShellBlock]:
    """The shell code blocks of a Markdown text, each with the not-run reason on the line before it."""
    blocks: list[ShellBlock] = []
    lines = markdown.splitlines()
    previous = ""  # the last non-blank line outside a block
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("```"):
            language = stripped[3:].strip().split(" ")[0].lower()
            end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
            if language in SHELL_LANGUAGES:
                marker = NOT_RUN.fullmatch(previous)
                blocks.append(ShellBlock(document, index + 1, "\n".join(lines[index + 1:end]) + "\n",
                                         marker.group("reason") if marker else None))
            previous, index = "```", end + 1
            continue
        if stripped:
            previous = stripped
        index += 1
    return blocks


def dangling_markers(markdown: str) -> list[int]:
    """Lines of not-run markers that no shell block follows (a marker must sit right above its block)."""
    lines = markdown.splitlines()
    dangling = []
    for number, line in enumerate(lines):
        if NOT_RUN.fullmatch(line.strip()):
            following = next((l.strip() for l in lines[number + 1:] if l.strip()), "")
            if not (following.startswith("```") and following[3:].strip().split(" ")[0].lower() in SHELL_LANGUAGES):
                dangling.append(number + 1)
    return dangling


def document_blocks(path: Path) -> list[ShellBlock]:
    return shell_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))


RUNNABLE = [path for path in DOCUMENTS if any(b.not_run is None for b in document_blocks(path))]


# --- the extraction itself ---------------------------------------------------------------------

def test_an_example_outside_the_demo_days_is_caught():
    # what the README's old shadow-sample example printed: fixed dates a year before the demo's days
    assert MISSED_THE_DATA.search("1 run(s), 2025-11-01 → 2025-11-16\n  this run:  0 conversations extracted, 0 analyzed")
    assert MISSED_THE_DATA.search("nothing to compare yet")
    assert not MISSED_THE_DATA.search("1 run(s), 2026-11-21 → 2026-12-04\n  this run:  420 conversations extracted, 10 runs")


def test_blocks_are_found_with_their_markers():
    text = (
        "intro\n\n<!-- not-run: needs a real key -->\n```bash\nexport OPENAI_API_KEY=sk-real\n```\n\n"
        "```text\n$ not a block to run\n```\n<!-- not-run: after a text block -->\n\n```sh\nls\n```\n"
        "```bash\nallpfit-etl status\nallpfit-etl tenants list\n```\n"
    )
    blocks = shell_blocks(text, "x.md")
    assert [(b.line, b.not_run) for b in blocks] == [(4, "needs a real key"), (13, "after a text block"), (16, None)]
    assert blocks[2].code == "allpfit-etl status\nallpfit-etl tenants list\n"


def test_a_marker_applies_only_to_the_block_right_below_it():
    text = ("<!-- not-run: a reason -->\nsome prose\n```bash\nallpfit-etl status\n```\n<!-- not-run: lost -->\n"
            "a table cell naming `<!-- not-run: reason -->` is prose\n")
    assert [b.not_run for b in shell_blocks(text)] == [None]
    assert dangling_markers(text) == [1, 6]


def test_every_not_run_marker_sits_above_a_shell_block_and_the_readme_runs_examples():
    for path in DOCUMENTS:
        assert dangling_markers(path.read_text(encoding="utf-8")) == [], f"{path.name}: a not-run marker above no shell block"
    assert REPO / "README.md" in RUNNABLE


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = (line.lstrip("#").strip() for line in markdown.splitlines() if re.match(r"#{1,6} ", line))
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_heading_anchors_are_githubs():
    assert heading_anchors("# Ops\n## Backfilling at half price: the Batch API\n### What each partition shows\n") == {
        "ops", "backfilling-at-half-price-the-batch-api", "what-each-partition-shows"}


@pytest.mark.parametrize("document", [*DOCUMENTS, REPO / "bench" / "README.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_its_file_and_heading(document: Path):
    broken = []
    for match in LINK.finditer(document.read_text(encoding="utf-8")):
        target = match.group("target")
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(target)
        elif fragment and fragment not in heading_anchors(linked.read_text(encoding="utf-8")):
            broken.append(target)
    assert broken == [], f"{document.relative_to(REPO)}: broken links {broken}"


# --- running them on the demo ------------------------------------------------------------------

def clean_environment() -> dict[str, str]:
    """This environment without anything that would redirect the examples; this Python's bin first."""
    env = {k: v for k, v in os.environ.items() if not FOREIGN_ENV.match(k)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    """A folder where ``allpfit-etl demo`` ran (SQLite, embedded defaults), and what it printed."""
    folder = tmp_path_factory.mktemp("demo")
    done = subprocess.run(["allpfit-etl", "demo"], cwd=folder, env=clean_environment(),
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"allpfit-etl demo failed:\n{done.stdout}\n{done.stderr}"
    return folder, done.stdout


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies waiting for their parent to reap them do not count)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def wait_for_exit(pids: list[int], timeout_s: float) -> None:
    """Block until these processes have exited (their pidfds become readable), or the timeout."""
    poller, fds = select.poll(), []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
        poller.register(fds[-1], select.POLLIN)
    deadline = time.monotonic() + timeout_s
    try:
        pending = set(fds)
        while pending and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                pending.discard(fd)
    finally:
        for fd in fds:
            os.close(fd)


def stop_groups(pgids: list[int]) -> None:
    """Stop what the blocks left running (each block ran in a process group of its own)."""
    for sig, grace_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        members = [pid for pgid in pgids for pid in group_members(pgid)]
        if not members:
            return
        for pgid in pgids:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        wait_for_exit(members, grace_s)


def run_block(block: ShellBlock, env: dict[str, str], cwd: Path, scratch: Path) -> tuple[int, str, dict[str, str], Path, int]:
    """Run one block as a user would paste it; return its exit status, output, the environment
    and folder it leaves, and its process group."""
    env_out, pwd_out, log = scratch / "env", scratch / "pwd", scratch / "output.log"
    script = (f"set -eo pipefail\n{block.code}\n"
              f'env -0 > "{env_out}"\npwd > "{pwd_out}"\n')
    with log.open("w") as output:  # a file, not a pipe: a background server would hold a pipe open
        process = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
    if code == 0:
        env = dict(item.split("=", 1) for item in env_out.read_text().split("\0") if "=" in item)
        cwd = Path(pwd_out.read_text().strip())
    return code, log.read_text(errors="replace"), env, cwd, process.pid


@pytest.mark.parametrize("document", RUNNABLE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_shell_examples_run_on_the_demo(document: Path, demo, tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(demo[0], folder, symlinks=True)  # each document starts from the demo as it printed
    env, cwd, groups = clean_environment(), folder, []
    ran = 0
    try:
        for number, block in enumerate(document_blocks(document)):
            if block.not_run is not None:
                continue
            scratch = tmp_path / f"block{number}"
            scratch.mkdir()
            started = time.monotonic()
            code, output, env, cwd, group = run_block(block, env, cwd, scratch)
            groups.append(group)
            print(f"{block}: exit {code} in {time.monotonic() - started:.1f} s")
            assert code == 0, f"{block} exited {code}:\n{block.code}\n--- output ---\n{output[-4000:]}"
            missed = MISSED_THE_DATA.search(output)
            assert missed is None, f"{block} missed the demo's data ({missed.group()!r}):\n{block.code}\n{output[-4000:]}"
            ran += 1
    finally:
        stop_groups(groups)
    assert ran > 0


def ui_line(demo_output: str) -> str:
    lines = [l.split(":", 1)[1].strip() for l in demo_output.splitlines() if l.startswith("open these runs in the Dagster UI:")]
    assert len(lines) == 1, demo_output
    return lines[0]


def validate_instead_of_serving(command: str, cwd: Path) -> subprocess.CompletedProcess:
    assert "dagster dev" in command, command
    return subprocess.run(["bash", "-c", command.replace("dagster dev", "dagster definitions validate", 1)],
                          cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


def test_the_dagster_dev_line_demo_prints_loads_the_code_location_from_the_demo_folder(demo):
    folder, output = demo
    command = ui_line(output)
    assert str(folder) in command  # absolute paths: it works from any folder, the demo's included
    done = validate_instead_of_serving(command, folder)
    assert done.returncode == 0, done.stdout + done.stderr
    # the code location's name is the one the CLI's runs carry, so the UI can re-execute them
    assert "Validation successful for code location allpfit_etl." in done.stdout + done.stderr


DAGSTER_DEV_LINES = [(block, line) for path in DOCUMENTS for block in document_blocks(path)
                     for line in block.code.splitlines() if "dagster dev" in line.split("#")[0]]


def test_the_docs_show_the_dagster_dev_line():
    assert any(block.document == "README.md" for block, _ in DAGSTER_DEV_LINES)


@pytest.mark.parametrize(("block", "line"), DAGSTER_DEV_LINES, ids=[str(b) for b, _ in DAGSTER_DEV_LINES])
def test_the_docs_dagster_dev_lines_load_the_code_location_from_the_demo_folder(block, line, demo):
    done = validate_instead_of_serving(line, demo[0])
    assert done.returncode == 0, f"{block}: {line}\n{done.stdout}{done.stderr}"
    assert "Validation successful for code location allpfit_etl." in done.stdout + done.stderr

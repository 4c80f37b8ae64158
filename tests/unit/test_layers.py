"""Import layering: jobs/ imports nothing above it, has no circles, and the web process does
not load the IMAP stack just to enqueue syncs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from inboxd.vocabulary import STEP_ACTIVITY, ActivityState, vocabulary

SRC = Path(__file__).resolve().parents[2] / "src" / "inboxd"

#: What jobs/ may import from inboxd (plus itself).
JOBS_MAY_IMPORT = (
    "inboxd.config",
    "inboxd.errors",
    "inboxd.db",
    "inboxd.logs",
    "inboxd.heap",
    "inboxd.vocabulary",
    "inboxd.jobs",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every inboxd module ``path`` imports anywhere: top level, TYPE_CHECKING, functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from inboxd.jobs import events`` imports the module inboxd.jobs.events.
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                known = (SRC.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                found.add(candidate if known else node.module)
    return {name for name in found if name == "inboxd" or name.startswith("inboxd.")}


def _graph(package: str) -> dict[str, set[str]]:
    root = SRC.parent / package.replace(".", "/")
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    return {_module_name(path): _imports(path) for path in files}


def test_jobs_imports_nothing_above_it() -> None:
    above = {
        (module, imported)
        for module, imports in _graph("inboxd.jobs").items()
        for imported in imports
        if not any(imported == ok or imported.startswith(ok + ".") for ok in JOBS_MAY_IMPORT)
    }
    assert above == set()


def test_vocabulary_imports_nothing_from_inboxd() -> None:
    assert _graph("inboxd.vocabulary") == {"inboxd.vocabulary": set()}


def test_jobs_modules_form_no_import_circle() -> None:
    graph = _graph("inboxd.jobs")
    edges = {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target] if target in path else [target]
            if target not in state and (circle := visit(target, [*path, target])):
                return circle
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state:
            assert visit(module, [module]) is None


def test_the_web_process_does_not_load_the_imap_stack(tmp_path: Path) -> None:
    # A fresh interpreter: this one has imported everything the other tests needed.
    script = f"""
import json, sys
from pathlib import Path
from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.config import Settings
from inboxd.jobs.registry import get_task
app = App.open(Settings(data_dir=Path({str(tmp_path)!r})))
create_api(app)
spec = get_task("sync")
app.close()
print(json.dumps({{"queue": spec.queue, "modules": sorted(sys.modules)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["queue"] == "default"  # the sync kind is registered, so it can be enqueued
    heavy = ("inboxd.providers.imap", "inboxd.sync.imap", "inboxd.sync.helpers", "imapclient")
    loaded = [m for m in answer["modules"] if m.startswith(heavy)]
    assert loaded == []


def test_vocabulary_lists_every_name_once_and_maps_steps_to_states() -> None:
    names = vocabulary()
    for key, values in names.items():
        if isinstance(values, list):
            assert len(values) == len(set(values)), key
    assert set(names["step_activity"]) <= set(names["steps"])
    assert set(STEP_ACTIVITY.values()) <= set(ActivityState)
    assert set(names["running_activity_states"]) < set(names["active_activity_states"])
    assert json.loads(json.dumps(names)) == names

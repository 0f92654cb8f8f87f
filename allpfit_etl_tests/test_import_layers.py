"""Imports flow one way: entry points → Dagster wrappers → plain logic → shared foundations.

Read with the standard library's ``ast`` (no import of the package), so the test also sees
imports inside functions. A module may import its own layer or a lower one; a step's Dagster
wrappers never import another step's wrappers (asset dependencies are named by key instead).
"""

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "allpfit_etl"

ENTRY, DAGSTER, LOGIC, FOUNDATION = 3, 2, 1, 0
LAYER_NAMES = {ENTRY: "entry point", DAGSTER: "Dagster wrapper", LOGIC: "plain logic", FOUNDATION: "foundation"}

# The longest matching prefix decides a module's layer; the README's layout section draws the same layers.
LAYERS = {
    # entry points: the CLI and the code location
    "allpfit_etl.cli": ENTRY,
    "allpfit_etl.definitions": ENTRY,
    "allpfit_etl.runner": ENTRY,
    # Dagster wrappers, one group per step
    "allpfit_etl.extract.assets": DAGSTER,
    "allpfit_etl.pending.assets": DAGSTER,
    "allpfit_etl.analysis.assets": DAGSTER,
    "allpfit_etl.analysis.openai_resource": DAGSTER,
    "allpfit_etl.load": DAGSTER,
    "allpfit_etl.automation": DAGSTER,
    "allpfit_etl.resources": DAGSTER,
    "allpfit_etl.monitoring.assets": DAGSTER,
    "allpfit_etl.monitoring.quality_assets": DAGSTER,
    # plain logic, tested without Dagster
    "allpfit_etl.extract": LOGIC,
    "allpfit_etl.pending": LOGIC,
    "allpfit_etl.analysis": LOGIC,
    "allpfit_etl.automation.activity": LOGIC,
    "allpfit_etl.status": LOGIC,
    "allpfit_etl.monitoring": LOGIC,
    "allpfit_etl.demo": LOGIC,
    "allpfit_etl.fake_openai": LOGIC,
    # shared foundations (partitions, jobs: the Dagster objects every step shares)
    "allpfit_etl": FOUNDATION,  # the package's own __init__
    "allpfit_etl.settings": FOUNDATION,
    "allpfit_etl.errors": FOUNDATION,
    "allpfit_etl.db": FOUNDATION,
    "allpfit_etl.text": FOUNDATION,
    "allpfit_etl.timeutil": FOUNDATION,
    "allpfit_etl.identities": FOUNDATION,
    "allpfit_etl.tables": FOUNDATION,
    "allpfit_etl.schema": FOUNDATION,
    "allpfit_etl.tenants": FOUNDATION,
    "allpfit_etl.partitions": FOUNDATION,
    "allpfit_etl.jobs": FOUNDATION,
}
# Dagster wrappers any step may use.
SHARED_WRAPPERS = {"allpfit_etl.resources"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS and (n > 1 or n == len(parts)):
            return LAYERS[prefix]
    return None


def step_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else ""


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("allpfit_etl"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("allpfit_etl"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"place these modules in LAYERS (and in the README's layout): {unplaced}"


def test_no_upward_or_sideways_import():
    problems = []
    for module, path in sorted(MODULES.items()):
        own = layer_of(module)
        for target in sorted(imported_modules(path)):
            theirs = layer_of(target)
            if own is None or theirs is None:
                continue
            if theirs > own:
                problems.append(f"{module} ({LAYER_NAMES[own]}) imports {target} ({LAYER_NAMES[theirs]})")
            elif own == theirs == DAGSTER and target not in SHARED_WRAPPERS and step_of(target) != step_of(module):
                problems.append(f"{module} imports another step's Dagster wrapper {target}")
    assert not problems, "imports must flow one way:\n" + "\n".join(problems)


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself can fail: a foundation importing an entry point is caught."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from allpfit_etl.runner import run_partitions\n")
    assert imported_modules(fake) == {"allpfit_etl.runner"}
    assert layer_of("allpfit_etl.runner") > layer_of("allpfit_etl.partitions")

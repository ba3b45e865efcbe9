"""The way through the house: each stage folder imports only from stages to its left, and no module circle exists
(function-local imports included: they hid a five-file circle once)."""

import ast
from pathlib import Path

import facelab

SRC = Path(facelab.__file__).parent
# Left to right. "base" is the shared ground (errors, files, hardware, plugins, progress, ranges, results); "run" a
# trained run reopened (what probes, keypoints, the web page and eval take); "studies" the four published protocols, built from all of them;
# "top" the commands (cli, demo, bench).
STAGES = ["base", "data", "models", "report", "training", "run", "probes", "keypoints", "web", "studies", "top"]
BASE = {"errors", "files", "hardware", "plugins", "progress", "ranges", "results"}


def stage_of(module: str) -> str:
    parts = module.split(".")[1:]  # after "facelab"
    if not parts or parts[0] in ("__init__", "__main__", "cli", "cli_options", "cli_probes", "demo_run", "bench", "model_export"):
        return "top"
    if parts[0] in BASE:
        return "base"
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """facelab modules imported anywhere in the file (module level or inside functions)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if all(a.name == "__version__" for a in node.names):  # a constant of the package, not its code
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # "from . import x" may name a module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    modules = {module_name(p) for p in SRC.rglob("*.py")}
    return {m for m in found if m in modules}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in SRC.rglob("*.py")}


def test_no_stage_imports_from_a_stage_to_its_right():
    upward = [f"{a} -> {b}" for a, deps in graph().items() for b in deps if STAGES.index(stage_of(b)) > STAGES.index(stage_of(a))]
    assert upward == []


def test_no_import_circles():
    g = graph()
    circles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(g.get(node, ())):
            if dep == node or dep.rsplit(".", 1)[0] == node:  # a package importing its own submodule
                continue
            if state.get(dep) == "open":
                circles.append(" -> ".join(path[path.index(dep) :] + [dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_private_names_taken_across_modules():
    taken = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                taken += [f"{module_name(path)}: {a.name}" for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
    assert taken == []


def test_only_the_task_classes_test_a_task_name():
    """A new task is one file plus one registry line: nothing else compares a value with a task's name."""
    from facelab.training.task_registry import TASKS

    task_files = {"tasks.py", "task_registry.py", "keypoint_task.py", "rotation_task.py"}
    found = []
    for path in SRC.rglob("*.py"):
        if path.name in task_files:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                found += [f"{path.name}:{node.lineno}" for n in names if n in TASKS]
    assert found == []

"""The house's shape: no import cycle anywhere in gfsr_tf (function-local imports included), no
upward import (method folders' top modules included), no private name across packages, and every
folder imports first without meeting a half-initialised module."""
import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "gfsr_tf"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, at any depth of its body; relative imports are
    resolved, `from pkg import name` counts `pkg.name` when that is a module."""
    files = {_module_name(f): f for f in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            graph[module] |= {n for n in names if n in files and n != module}
    return graph


def find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 40 and "gfsr_tf.study.run" in graph["gfsr_tf.study"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_constructed_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# A method folder (methods/<name>/) holds everything that exists only for that method. Its
# config, model, loss, step and explainer modules sit at the methods layer; these modules of it
# sit at the top, beside study/, report/ and presets/, and may import them.
METHOD_TOP_MODULES = ("preset", "study", "report")
TOP = ("gfsr_tf.study", "gfsr_tf.report", "gfsr_tf.presets", "gfsr_tf.cli")


def is_top(module: str) -> bool:
    parts = module.split(".")
    method_top = len(parts) == 4 and parts[1] == "methods" and parts[3] in METHOD_TOP_MODULES
    return module.startswith(TOP) or method_top


def test_lower_floors_never_import_the_top():
    """Data walks one way: datasets, guidance, models, saliency, losses, metrics, training and
    methods import nothing from study, report, presets or cli, nor a method folder's preset,
    study or report module."""
    lower = ("gfsr_tf.datasets", "gfsr_tf.guidance", "gfsr_tf.models", "gfsr_tf.saliency",
             "gfsr_tf.losses", "gfsr_tf.metrics", "gfsr_tf.training", "gfsr_tf.methods",
             "gfsr_tf.evaluators", "gfsr_tf.config", "gfsr_tf.preprocessing")
    upward = [(m, n) for m, deps in import_graph().items() if m.startswith(lower)
              and not is_top(m) for n in deps if is_top(n)]
    assert upward == []


def test_the_layer_rule_knows_a_method_folders_top_modules():
    assert is_top("gfsr_tf.methods.gaze_intensity.study")
    assert is_top("gfsr_tf.methods.gaze_intensity.preset")
    assert not is_top("gfsr_tf.methods.gaze_intensity.model")
    assert not is_top("gfsr_tf.methods.gaze_intensity")
    graph = import_graph()
    assert "gfsr_tf.study.run" in graph["gfsr_tf.methods.gaze_intensity.study"]


def test_the_command_line_starts_without_tensorflow():
    """`gfsr --help` and argument errors answer at once: TensorFlow loads only when a command
    runs."""
    import subprocess
    import sys
    code = ("import sys; from gfsr_tf.cli import build_parser; build_parser(); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras')))[:5]")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def private_imports_across_packages() -> list[tuple[str, str]]:
    """(module, imported name) for every `from X import _name` where X lives in another package
    than the importing module (siblings in one package may share private helpers)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")
                source = ".".join(base[:len(base) - node.level + 1]
                                  + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            source_package = source.rpartition(".")[0] if (PACKAGE.parent / (
                source.replace(".", "/") + ".py")).exists() else source
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") \
                        and source_package != package:
                    found.append((module, f"{source}.{alias.name}"))
    return found


def test_no_private_name_is_imported_across_packages():
    assert private_imports_across_packages() == []


def test_the_old_evaluation_package_is_a_deprecated_alias_of_metrics():
    import importlib
    import sys
    import warnings
    importlib.import_module("gfsr_tf.metrics")
    for name in [m for m in sys.modules if m.startswith("gfsr_tf.evaluation")]:
        del sys.modules[name]                  # so that the import below runs the alias again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("gfsr_tf.evaluation.localization")
    assert any(issubclass(w.category, DeprecationWarning) and "renamed gfsr_tf.metrics"
               in str(w.message) for w in caught)
    from gfsr_tf.metrics.localization import hit_rate
    assert old.hit_rate is hit_rate


def _imports_first(module: str) -> None:
    import subprocess
    import sys
    code = (f"import {module}\nimport gfsr_tf.models\nfrom gfsr_tf.models import build_patchnet\n"
            "from gfsr_tf.methods import method_names\nassert len(method_names()) >= 7\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"importing {module} first: {r.stderr[-1500:]}"


def test_a_method_folder_with_registered_layers_imports_first():
    """gfsr_tf.models imports the method folders that hold registered layers; importing such a
    folder first must not meet a half-initialised module."""
    _imports_first("gfsr_tf.methods.patchnet")


@pytest.mark.slow
@pytest.mark.parametrize("module", ["gfsr_tf.methods.baseline", "gfsr_tf.methods.gaze_intensity",
                                    "gfsr_tf.methods.gaze_unet", "gfsr_tf.methods.segmenter",
                                    "gfsr_tf.methods.gfsr", "gfsr_tf.evaluators", "gfsr_tf.export",
                                    "gfsr_tf.methods.gfsr.preset", "gfsr_tf.saliency"])
def test_every_folder_imports_first(module):
    _imports_first(module)

"""The layout's import rules, so that it cannot drift back: the framing (app/faces) and the model
contract (app/model) are a core that both halves share; the library (app/) never imports the
training package nor the HTTP service; only the service imports FastAPI; TensorFlow only where
the SavedModel runtime is asked for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data import REPO

MAX_LINES = 300
LONG_FILE_REASON = "longer than 300 lines because"  # a file over the limit says why, in a comment


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The modules `path` imports (anywhere in it, or only at module level)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _under(names: set[str], *prefixes: str) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("path", _modules("app"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_library_never_imports_training_or_test_code(path):
    assert not _under(_imports(path), "model_training", "harness", "tests", "keras")


@pytest.mark.parametrize("path", _modules("app"), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_service_imports_fastapi_and_only_entry_points_import_the_service(path):
    relative = path.relative_to(REPO).as_posix()
    if relative.startswith("app/service/"):
        return
    assert not _under(_imports(path), "fastapi", "starlette"), "FastAPI belongs to app/service"
    if relative not in ("app/__main__.py", "app/cli.py"):  # the ways to start the service
        assert not _under(_imports(path), "app.service"), "the library does not import the HTTP service"


@pytest.mark.parametrize("path", _modules("app/faces"), ids=lambda p: str(p.relative_to(REPO)))
def test_faces_need_only_numpy_and_opencv(path):
    third_party = {n.split(".")[0] for n in _imports(path)} - set(sys.stdlib_module_names)
    assert third_party <= {"numpy", "cv2", "app"}
    assert not (_under(_imports(path), "app") - _under(_imports(path), "app.faces"))


@pytest.mark.parametrize("path", _modules("app/model"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_model_contract_needs_numpy_onnx_runtime_and_the_faces(path):
    names = _imports(path)
    third_party = {n.split(".")[0] for n in names} - set(sys.stdlib_module_names)
    assert third_party <= {"numpy", "onnxruntime", "tensorflow", "app"}
    assert not _under(_imports(path, top_level_only=True), "tensorflow"), "TensorFlow only when asked for"
    assert _under(names, "app") <= _under(names, "app.faces", "app.model")


@pytest.mark.parametrize("path", _modules("model_training"), ids=lambda p: str(p.relative_to(REPO)))
def test_training_shares_the_core_but_never_imports_the_service(path):
    assert not _under(_imports(path), "app.service", "fastapi")


def test_the_library_and_service_load_without_tensorflow_or_training_code():
    code = (
        "import sys, app.estimator, app.video, app.cli, app.service.main; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'model_training', 'tf2onnx'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "path",
    [*_modules("app"), *_modules("model_training"), *_modules("harness")],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_no_module_is_over_300_lines_without_saying_why(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES or LONG_FILE_REASON in text

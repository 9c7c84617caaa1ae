"""The module layout of docs/architecture.md: the pipeline's import order, no cycles, a scoring path without torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pynima

PACKAGE = Path(pynima.__file__).parent

# docs/architecture.md: a module may import only modules of a lower layer (lazily inside functions too)
LAYERS = {
    "errors": 0,
    "scale": 0,
    "files": 1,
    "distortions": 1,
    "config": 2,
    "data": 2,
    "losses": 2,
    "metrics": 2,
    "fullref": 2,
    "labels": 3,
    "model": 3,
    "synth": 3,
    "datasets": 3,
    "predict": 4,
    "evaluate": 5,
    "export": 5,
    "serve": 5,
    "ray": 5,
    "torch_metric": 5,
    "train": 6,
    "benchmark": 7,
    "search": 7,
    "report": 8,
    "cli": 9,
    "__main__": 10,
}
# what scoring with an ONNX model may load: the core install (pip install pynima) has no torch, scipy, timm...
HEAVY = (
    "torch",
    "torchvision",
    "timm",
    "lightning",
    "scipy",
    "optuna",
    "openvino",
    "matplotlib",
    "skimage",
    "piq",
    "onnx",
    "pywt",
)


def imports(path: Path) -> set[str]:
    """The pynima modules ``path`` imports anywhere in its code, except its own package root (``__version__``) and
    imports only for type checkers."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pynima."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "pynima":  # from pynima import data
            found |= {a.name for a in node.names if a.name in LAYERS}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pynima.")}
    return found - {path.stem}


def test_every_module_has_a_layer():
    assert {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} == set(LAYERS)


def test_modules_import_only_lower_layers():
    wrong = [
        f"{p.stem} (layer {LAYERS[p.stem]}) imports {m} (layer {LAYERS[m]})"
        for p in sorted(PACKAGE.glob("*.py"))
        if p.stem in LAYERS
        for m in sorted(imports(p))
        if LAYERS[m] >= LAYERS[p.stem]
    ]
    assert not wrong, wrong


def test_each_module_imports_alone():
    """Each module imported first, in a fresh interpreter state of pynima: an import cycle would fail here."""
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(LAYERS)!r}:\n"
        "    for k in [k for k in sys.modules if k == 'pynima' or k.startswith('pynima.')]:\n"
        "        del sys.modules[k]\n"
        "    importlib.import_module('pynima.' + name)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_scoring_with_an_onnx_model_needs_no_torch(run, photos, tmp_path):
    """The core install: the CLI scores with an ONNX export while every heavy package fails to import."""
    from PIL import Image

    from pynima.export import export_onnx

    model = export_onnx(run / "best.ckpt", tmp_path / "model.onnx")
    image = tmp_path / "photo.png"
    Image.fromarray(photos[0]).save(image)
    block = "; ".join(f"sys.modules[{m!r}] = None" for m in HEAVY)
    code = (
        f"import sys; {block}\n"
        "from pynima.cli import main\n"
        f"code = main(['predict', {str(model)!r}, {str(image)!r}, '--format', 'json'])\n"
        f"loaded = sorted(m for m in {HEAVY!r} if sys.modules.get(m) is not None)\n"
        "assert not loaded, loaded\n"
        "sys.exit(code)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"mean"' in r.stdout


def test_a_command_that_needs_a_missing_extra_says_which_one(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from pynima.cli import main\n"
        f"sys.exit(main(['train', {str(tmp_path)!r}, '--out', {str(tmp_path / 'run')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip() == "pynima train: error: needs torch, which the core install leaves out: "
        "pip install 'pynima[train]'"
    )


def test_no_module_imports_a_private_name_of_another():
    """A name with a leading underscore is its module's own business: other modules use public seams."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pynima"):
                found += [
                    f"{path.name} imports {a.name} from {node.module}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not found, found


def test_the_modules_table_of_the_docs_is_the_layer_list():
    """docs/architecture.md's table names every module with the layer this test enforces, and no other."""
    import re

    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    documented = {m: int(layer) for layer, m in re.findall(r"^\| (\d+) \| `(\w+)` \|", text, re.M)}
    assert documented == {m: layer for m, layer in LAYERS.items() if m != "__main__"}

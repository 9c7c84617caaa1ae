"""The module layout of docs/architecture.md: the pipeline's import order, no cycles, a scoring path without torch."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pynima

PACKAGE = Path(pynima.__file__).parent

# docs/architecture.md: the package's entries (a module, or a sub-package and every module in it) in layers; code
# may import only entries of a lower layer (lazily inside functions too), or modules of its own sub-package
LAYERS = {
    "errors": 0,
    "scale": 0,
    "files": 1,
    "images": 1,
    "config": 2,
    "model": 3,
    "datasets": 3,
    "synth": 4,
    "scoring": 4,
    "evaluation": 5,
    "serving": 5,
    "training": 6,
    "cli": 7,
    "__main__": 8,
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


def module_name(path: Path) -> str:
    """``src/pynima/datasets/tid2013.py`` -> ``pynima.datasets.tid2013`` (a package's ``__init__``: the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def entry(module: str) -> str:
    """The entry of the package a module belongs to: ``pynima.datasets.tid2013`` -> ``datasets``."""
    return module.split(".")[1]


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """The pynima modules ``path`` imports anywhere in its code, except the package root (``__version__``) and imports
    only for type checkers."""
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
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module == "pynima":  # from pynima import datasets
            found |= {f"pynima.{a.name}" for a in node.names if f"pynima.{a.name}" in MODULES}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pynima.")}
    return found - {module_name(path)}


def test_every_entry_has_a_layer():
    entries = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert entries - {"__init__"} == set(LAYERS)


def test_entries_import_only_lower_layers():
    wrong = [
        f"{name} (layer {LAYERS[entry(name)]}) imports {m} (layer {LAYERS[entry(m)]})"
        for name, path in MODULES.items()
        if name != "pynima"
        for m in sorted(imports(path))
        if entry(m) != entry(name) and LAYERS[entry(m)] >= LAYERS[entry(name)]
    ]
    assert not wrong, wrong


def test_no_import_cycle_between_modules():
    """Lazy imports included: a cycle inside a sub-package would make its layering a matter of call order."""
    from graphlib import CycleError, TopologicalSorter

    graph = {name: imports(path) for name, path in MODULES.items() if name != "pynima"}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_no_module_over_500_lines():
    """Except the distortions: 24 small functions, one per TID2013 type, and their table, read best in one place."""
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 500}
    assert set(long) <= {"pynima.synth.distortions"}, long
    assert long.get("pynima.synth.distortions", 0) < 600


@pytest.mark.slow
def test_each_module_imports_alone():
    """Each module imported first, in a fresh interpreter state of pynima: an import cycle would fail here."""
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for k in [k for k in sys.modules if k == 'pynima' or k.startswith('pynima.')]:\n"
        "        del sys.modules[k]\n"
        "    importlib.import_module(name)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
def test_scoring_with_an_onnx_model_needs_no_torch(run, photos, tmp_path):
    """The core install: the CLI scores with an ONNX export while every heavy package fails to import."""
    from PIL import Image

    from pynima.scoring.export import export_onnx

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
                    f"{module_name(path)} imports {a.name} from {node.module}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not found, found


def test_the_modules_table_of_the_docs_is_the_layer_list():
    """docs/architecture.md's table names every entry with the layer this test enforces, and no other."""
    import re

    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    documented = {m: int(layer) for layer, m in re.findall(r"^\| (\d+) \| `(\w+)/?` \|", text, re.M)}
    assert documented == {m: layer for m, layer in LAYERS.items() if m != "__main__"}


def test_the_readmes_command_list_is_the_parsers():
    """README's short list names each command once, in the parser's words; the options are in --help alone."""
    import argparse

    from pynima.cli.parser import build_parser

    text = (PACKAGE.parents[1] / "README.md").read_text().split("## Commands")[1].split("\n## ")[0]
    listed = re.findall(r"^- `pynima (\w+)", text, re.M)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(listed) == sorted(sub.choices) and len(listed) == len(set(listed))


def test_every_third_party_import_is_a_core_dependency_or_in_an_extra():
    """The missing-module message names the extra from pyproject.toml's metadata: a module imported in the code but
    listed nowhere would leave a user with a traceback instead of the pip line.
    """
    from importlib import metadata

    from pynima.cli.process import DISTRIBUTIONS, extra_for

    core = {re.match(r"[A-Za-z0-9._-]+", r)[0].lower() for r in metadata.requires("pynima") if "extra" not in r}
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    third_party = names - set(sys.stdlib_module_names) - {"pynima", "fsspec"}  # fsspec: tried, never needed
    unlisted = [m for m in third_party if DISTRIBUTIONS.get(m, m).lower() not in core and extra_for(m) is None]
    assert not unlisted, unlisted
    assert (extra_for("torch"), extra_for("skimage"), extra_for("optuna"), extra_for("multipart")) == (
        "train",
        "train",
        "search",
        "serve",
    )
    assert extra_for("numpy") is None and extra_for("no_such_module") is None

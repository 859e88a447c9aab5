"""What a new user's machine gets: every import of the package, the benchmark scripts and
the tests is declared in setup.py (the package's in install_requires, the benchmarks' in the
`bench` extra, the tests' in the `test` extra), and CI runs the README's set-up commands as
the README writes them."""

import ast
import re
import runpy
import sys
import types
from pathlib import Path
from typing import Dict, List, Set

import pytest

from ..util import ROOT

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 10), reason="needs sys.stdlib_module_names and packages_distributions"
)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: List[str]) -> Set[str]:
    return {_normalise(re.match(r"[A-Za-z0-9._-]+", req.strip()).group(0)) for req in requirements}


@pytest.fixture(scope="module")
def setup_kwargs() -> Dict:
    """setup.py's arguments: run it against a stand-in setuptools that records them."""
    captured = {}
    fake = types.ModuleType("setuptools")
    fake.setup = lambda **kwargs: captured.update(kwargs)
    fake.find_packages = lambda *args, **kwargs: []
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "setuptools", fake)
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    return captured


def _third_party_imports(directory: Path) -> Dict[str, List[str]]:
    """Top-level module name -> the files importing it, for every absolute import in
    directory's .py files that is neither the standard library nor a sibling module."""
    found: Dict[str, List[str]] = {}
    for path in sorted(directory.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                local = (path.parent / f"{top}.py").exists() or (
                    path.parent / top / "__init__.py"
                ).exists()
                if (
                    top in sys.stdlib_module_names
                    or top == "__future__"
                    or local
                    or top in ("spacy_lmcrf", "tests")
                ):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def _distributions(module: str) -> Set[str]:
    """The distributions that provide `module` if installed, else the module's own name
    (so the check is about what setup.py declares, not what this machine has)."""
    from importlib.metadata import packages_distributions

    dists = packages_distributions().get(module)
    return {_normalise(d) for d in dists} if dists else {_normalise(module)}


@pytest.mark.parametrize(
    "directory,extras",
    # ray: imported only by `spacy lmcrf annotate --engine ray` (and the benchmark of its
    # engines), the ray extra
    [("spacy_lmcrf", ["ray"]), ("benchmarks", ["bench", "ray"]), ("tests", ["test"])],
)
@pytest.mark.slow
def test_every_import_is_declared(setup_kwargs, directory, extras):
    declared = _requirement_names(setup_kwargs["install_requires"])
    for extra in extras:
        declared |= _requirement_names(setup_kwargs["extras_require"][extra])
    undeclared = {
        module: files
        for module, files in _third_party_imports(ROOT / directory).items()
        if not _distributions(module) & declared
    }
    assert not undeclared, (
        f"{directory}/ imports what setup.py does not declare (with {extras}): {undeclared}"
    )


def test_test_extra_holds_the_bench_extra(setup_kwargs):
    extras = setup_kwargs["extras_require"]
    assert _requirement_names(extras["bench"]) <= _requirement_names(extras["test"])


def test_ci_runs_the_readme_set_up_commands_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    block = re.search(r"## Set-up.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    install = [c for c in commands if c.startswith("pip install")]
    test = [c for c in commands if c.startswith("python -m pytest")]
    assert install == ['pip install -c constraints.txt -e ".[test]"'] and test == [
        "python -m pytest tests -q"
    ]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf8").splitlines()]
    assert install[0] in ci and test[0] in ci
    assert ci.index(install[0]) < ci.index(test[0])
    assert any(
        line.startswith("python3 -m venv") for line in ci
    )  # a new venv, not this machine's python


def test_license_is_declared(setup_kwargs):
    assert (ROOT / "LICENSE").read_text(encoding="utf8").startswith("MIT License")
    assert setup_kwargs["license"] == "MIT"
    assert "License :: OSI Approved :: MIT License" in setup_kwargs["classifiers"]

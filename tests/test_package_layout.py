"""The package's imports flow one way (README's package map): pipeline -> ml.models ->
ml.{modules, featurize, torch_bridge}; pretrain -> ml.modules. Read from the source, so
an import that breaks the layout fails here before anyone browses it."""

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

from .util import ROOT

PACKAGE = ROOT / "spacy_lmcrf"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> Dict[str, List[Tuple[str, List[str]]]]:
    """Each module's imports: (imported module, the names taken from it)."""
    found: Dict[str, List[Tuple[str, List[str]]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found[name] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
            if isinstance(node, ast.Import):
                found[name].extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found[name].append((target, [alias.name for alias in node.names]))
    return found


IMPORTS = imports()


def targets(prefix: str) -> Set[Tuple[str, str]]:
    return {
        (module, target)
        for module, pairs in IMPORTS.items()
        if module == prefix or module.startswith(prefix + ".")
        for target, _ in pairs
    }


def under(target: str, *prefixes: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def test_the_package_is_read():
    assert "spacy_lmcrf.ml.torch_bridge" in IMPORTS and len(IMPORTS) > 50


@pytest.mark.parametrize(
    "area,forbidden",
    [
        (
            "spacy_lmcrf.ml",
            ("spacy_lmcrf.pretrain", "spacy_lmcrf.pipeline", "spacy_lmcrf.training"),
        ),
        ("spacy_lmcrf.ml.modules", ("spacy", "thinc", "spacy_lmcrf.ml.models")),
        ("spacy_lmcrf.ml.featurize", ("torch", "spacy_lmcrf.ml.models")),
        ("spacy_lmcrf.pretrain", ("spacy_lmcrf.pipeline", "spacy_lmcrf.ml.models")),
    ],
)
def test_imports_flow_one_way(area, forbidden):
    wrong = sorted((m, t) for m, t in targets(area) if under(t, *forbidden))
    assert not wrong, f"{area} must not import {forbidden}: {wrong}"


def test_no_builder_imports_another_builders_private_names():
    models = "spacy_lmcrf.ml.models"
    wrong = [
        (module, target, name)
        for module, pairs in IMPORTS.items()
        if module.startswith(models + ".")
        for target, names in pairs
        if target.startswith(models + ".") and target != module
        for name in names
        if name.startswith("_")
    ]
    assert not wrong, wrong


def test_every_torch_tok2vec_uses_the_one_shell():
    """No builder wraps a torch module itself, except the CRF head (its output is
    potentials, not rows): the shell is torch_bridge.torch_tok2vec."""
    wrapping = sorted(
        module
        for module, pairs in IMPORTS.items()
        if module.startswith("spacy_lmcrf.ml.models.")
        for target, names in pairs
        if target == "spacy_lmcrf.ml.torch_bridge" and "wrap_torch_module" in names
    )
    assert wrapping == ["spacy_lmcrf.ml.models.crf_tagger"]

"""`spacy lmcrf package`: a trained pipeline ships like a model. Its wheel and spacy-lmcrf's
go into one directory, from which `pip install --no-index --find-links DIR en_NAME` installs
the pipeline into a fresh venv that has torch and spaCy but not spacy-lmcrf, and
`spacy.load("en_NAME")` there annotates as the pipeline did where it was trained."""

import importlib.util
import json
import os
import shlex
import site
import subprocess
import sys
import zipfile
from email.message import Message
from importlib import metadata
from pathlib import Path
from typing import Dict, List

import pytest
import spacy
import typer
from spacy.util import is_compatible_version, split_requirement
from typer.testing import CliRunner, Result

from spacy_lmcrf.packaging import (
    PackagingError,
    package_cli,
    read_wheel_metadata,
    repack_installed,
    requirements_left_to_target,
)

from ..util import make_nlp, ner_examples, train

NAME = "tiny_ner"
PACKAGE = f"en_{NAME}"
VERSION = "0.0.1"
SENTENCE = "Angela Merkel met Emmanuel Macron in Berlin ."

needs_pip_and_venv = pytest.mark.skipif(
    importlib.util.find_spec("pip") is None or importlib.util.find_spec("venv") is None,
    reason="packaging and installing the pipeline need pip and venv in this Python",
)


def _group() -> None:
    """spacy-lmcrf's commands, as spacy_lmcrf/cli.py groups them."""


def lmcrf_app() -> typer.Typer:
    """package_cli registered as spacy_lmcrf/cli.py registers it, on a group of our own."""
    app = typer.Typer()
    app.callback()(_group)
    app.command("package")(package_cli)
    return app


def run_package_cli(*args: str) -> Result:
    return CliRunner().invoke(lmcrf_app(), ["package", *args])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny blank-English lm_crf_ner pipeline, trained a few steps on NER_DATA, saved."""
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), n_steps=40)
    path = tmp_path_factory.mktemp("model") / "model-best"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def packaged(model_dir, tmp_path_factory) -> Dict:
    """`spacy lmcrf package MODEL OUT --name tiny_ner --version 0.0.1`."""
    out = tmp_path_factory.mktemp("packages")
    result = run_package_cli(str(model_dir), str(out), "--name", NAME, "--version", VERSION)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    printed_command = next(line for line in reversed(lines) if line.startswith("pip install"))
    return {"out": out, "output": result.output, "install_command": printed_command}


def clean_env(home: Path) -> Dict[str, str]:
    """An environment that names nothing of this one: no PYTHONPATH, no pip configuration."""
    return {
        "PATH": os.defpath,
        "HOME": str(home),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "OMP_NUM_THREADS": "1",
    }


def run_python(python: Path, args: List[str], home: Path) -> subprocess.CompletedProcess:
    """python -I (no PYTHON* variables, no user site, not the working directory on
    sys.path) in home, with a clean environment: only the venv decides what it imports."""
    return subprocess.run(
        [str(python), "-I", *args],
        cwd=home,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )


def is_spacy_lmcrf_entry(name: str) -> bool:
    """Entries of a site-packages that make spacy_lmcrf importable or installed: its package,
    its .dist-info / .egg-info / .egg-link, and setuptools' editable finder and .pth files."""
    name = name.lower().replace("-", "_")
    return name.startswith(("spacy_lmcrf", "__editable__")) or name.endswith((".pth", ".egg-link"))


def make_venv_without_spacy_lmcrf(venv_dir: Path) -> Path:
    """A new venv whose user installed torch and spaCy their way: it sees this Python's
    site-packages through a folder of links to every entry but spacy_lmcrf's (see
    is_spacy_lmcrf_entry; no .pth file, so no editable finder runs either), named by a .pth
    file in the venv's own site-packages. pip comes from there too. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], check=True)
    python = venv_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    user_packages = venv_dir / "user-installed"
    user_packages.mkdir()
    site_dirs = site.getsitepackages() + (
        [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    )
    for site_dir in map(Path, site_dirs):
        for entry in site_dir.iterdir() if site_dir.is_dir() else []:
            link = user_packages / entry.name
            if not is_spacy_lmcrf_entry(entry.name) and not link.exists():
                link.symlink_to(entry)
    (Path(purelib) / "user-installed.pth").write_text(f"{user_packages}\n", encoding="utf8")
    return python


FIND_SPACY_LMCRF = """
import importlib.metadata as m, importlib.util as u, json
dists = [d.metadata["Name"] for d in m.distributions()]
print(json.dumps({
    "found": {name: u.find_spec(name) is not None for name in ("spacy_lmcrf", "spacy", "torch")},
    "spacy_lmcrf_dists": [n for n in dists if n and n.lower().replace("_", "-") == "spacy-lmcrf"],
}))
"""

LOAD_AND_ANNOTATE = """
import json, sys, spacy, spacy_lmcrf
nlp = spacy.load(sys.argv[1])
doc = nlp(sys.argv[2])
print(json.dumps({
    "spacy_lmcrf": spacy_lmcrf.__file__,
    "pipeline": sys.modules[sys.argv[1]].__file__,
    "pipe_names": nlp.pipe_names,
    "ents": [[ent.text, ent.label_] for ent in doc.ents],
}))
"""


@pytest.fixture(scope="module")
def venv_install(packaged, tmp_path_factory) -> Dict:
    """The printed pip command, run in a fresh venv without spacy_lmcrf; then spacy.load."""
    home = tmp_path_factory.mktemp("venv_home")
    venv_dir = home / "venv"
    python = make_venv_without_spacy_lmcrf(venv_dir)
    before = run_python(python, ["-c", FIND_SPACY_LMCRF], home)
    assert before.returncode == 0, before.stderr
    command = shlex.split(packaged["install_command"])
    assert command[:2] == ["pip", "install"]
    install = run_python(python, ["-m", "pip", *command[1:]], home)
    assert install.returncode == 0, install.stdout + install.stderr
    load = run_python(python, ["-c", LOAD_AND_ANNOTATE, PACKAGE, SENTENCE], home)
    assert load.returncode == 0, load.stderr
    return {
        "venv": venv_dir,
        "before": json.loads(before.stdout),
        "install_output": install.stdout,
        "loaded": json.loads(load.stdout.strip().splitlines()[-1]),
    }


def unwrapped(output: str) -> str:
    """Printed text with wasabi's line wrapping undone."""
    return " ".join(output.split())


def wheel_names(out: Path) -> List[str]:
    return sorted(path.name for path in out.glob("*.whl"))


@pytest.mark.slow
@needs_pip_and_venv
def test_out_holds_the_pipeline_wheel_and_the_spacy_lmcrf_wheel_it_requires(packaged):
    out = packaged["out"]
    lmcrf_version = metadata.version("spacy-lmcrf")
    assert wheel_names(out) == [
        f"{PACKAGE}-{VERSION}-py3-none-any.whl",
        f"spacy_lmcrf-{lmcrf_version}-py3-none-any.whl",
    ]
    assert (out / f"{PACKAGE}-{VERSION}" / "meta.json").exists()  # spaCy's package directory
    assert not list(out.glob(".lmcrf-package-*"))  # the staging directory is gone
    requires = read_wheel_metadata(out / wheel_names(out)[0]).get_all("Requires-Dist")
    specifiers = dict(split_requirement(req) for req in requires)
    assert is_compatible_version(lmcrf_version, specifiers["spacy-lmcrf"])
    assert "spacy" in specifiers  # --require-parent, spaCy's CLI default
    assert packaged["install_command"] == (
        f"pip install --no-index --find-links {shlex.quote(str(out.resolve()))} {PACKAGE}"
    )


@pytest.mark.slow
@needs_pip_and_venv
def test_pipeline_installs_offline_into_a_fresh_venv_and_annotates(model_dir, venv_install):
    before = venv_install["before"]
    assert before["found"] == {"spacy_lmcrf": False, "spacy": True, "torch": True}
    assert before["spacy_lmcrf_dists"] == []
    installed = next(
        line for line in venv_install["install_output"].splitlines() if "Successfully" in line
    )
    assert f"{PACKAGE}-{VERSION}" in installed and "spacy-lmcrf-" in installed
    loaded = venv_install["loaded"]
    venv = venv_install["venv"].resolve()
    assert Path(loaded["spacy_lmcrf"]).resolve().is_relative_to(venv)
    assert Path(loaded["pipeline"]).resolve().is_relative_to(venv)
    assert loaded["pipe_names"] == ["lm_crf_ner"]
    here = spacy.load(model_dir)(SENTENCE)
    assert loaded["ents"] == [[ent.text, ent.label_] for ent in here.ents]


@pytest.mark.slow
@needs_pip_and_venv
def test_repacking_the_installed_spacy_lmcrf_gives_back_its_wheel(packaged, venv_install, tmp_path):
    out = packaged["out"]
    built = out / next(name for name in wheel_names(out) if name.startswith("spacy_lmcrf"))
    site_packages = Path(venv_install["loaded"]["spacy_lmcrf"]).parents[1]
    dist = metadata.Distribution.at(next(site_packages.glob("spacy_lmcrf-*.dist-info")))
    repacked = repack_installed(dist, tmp_path)
    assert repacked.name == built.name
    with zipfile.ZipFile(built) as a, zipfile.ZipFile(repacked) as b:
        names = sorted(a.namelist())
        assert sorted(b.namelist()) == names
        record = next(name for name in names if name.endswith(".dist-info/RECORD"))
        for name in names:
            if name != record:
                assert a.read(name) == b.read(name), name
        assert sorted(a.read(record).split()) == sorted(b.read(record).split())


@pytest.mark.slow
@needs_pip_and_venv
def test_an_existing_package_directory_needs_force(packaged, model_dir):
    out = packaged["out"]
    listing = sorted(path.name for path in out.iterdir())
    result = run_package_cli(str(model_dir), str(out), "--name", NAME, "--version", VERSION)
    assert result.exit_code == 1
    assert "already exists: remove it or package with --force" in unwrapped(result.output)
    assert sorted(path.name for path in out.iterdir()) == listing


def test_unknown_build_format_fails(tmp_path):
    result = run_package_cli(str(tmp_path), str(tmp_path / "out"), "--build", "none")
    assert result.exit_code == 1
    assert "Unknown build format(s) none" in unwrapped(result.output)
    assert not (tmp_path / "out").exists()


def _lmcrf_metadata(version: str) -> Message:
    meta = Message()
    meta["Version"] = version
    meta["Requires-Dist"] = "torch>=2.1"
    meta["Requires-Dist"] = 'pytest>=7; extra == "test"'
    return meta


def test_the_target_needs_what_both_wheels_require_but_ours():
    requirements = ["spacy-lmcrf>=0.1.0,<0.2.0", "spacy>=3.8.18,<3.9.0"]
    left = requirements_left_to_target(requirements, _lmcrf_metadata("0.1.0"))
    assert left == ["spacy>=3.8.18,<3.9.0", "torch>=2.1"]


def test_a_spacy_lmcrf_version_the_pipeline_does_not_accept_fails():
    with pytest.raises(
        PackagingError, match="requires spacy_lmcrf>=0.2.0,<0.3.0 but spacy-lmcrf is 0.1.0"
    ):
        requirements_left_to_target(["spacy_lmcrf>=0.2.0,<0.3.0"], _lmcrf_metadata("0.1.0"))

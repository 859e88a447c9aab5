"""`spacy lmcrf package`: a trained pipeline as wheels that install offline.

`spacy package` makes a pipeline package that requires spacy-lmcrf, which no package index
serves. This command runs spaCy's `package` and puts beside the pipeline's wheel a wheel of
spacy-lmcrf itself, the version the pipeline requires, so that in an environment that has
torch and spaCy

    pip install --no-index --find-links OUTPUT_DIR en_NAME

installs the pipeline and `spacy.load("en_NAME")` runs it.

python -m spacy lmcrf package training/model-best packages --name conll03_ner --version 1.0.0
"""

import base64
import email.parser
import hashlib
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from email.message import Message
from importlib import metadata
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import srsly
from spacy.cli._util import Arg, Opt, string_to_list
from spacy.cli.package import package as spacy_package
from spacy.util import is_compatible_version, split_requirement
from wasabi import Printer

DISTRIBUTION = "spacy-lmcrf"
PACKAGE_DIR = Path(__file__).parent
# what pip writes into an installed distribution's .dist-info that is not part of its wheel
INSTALL_RECORDS = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class PackagingError(RuntimeError):
    """A pipeline could not be packaged; the message says why and what to do."""


@dataclass
class PackagedPipeline:
    """What `package_pipeline` left in its output directory.

    package_name (str): The pipeline's package name, e.g. "en_conll03_ner".
    package_dir (Path): spaCy's package directory (setup.py, meta.json, the data, dist/).
    pipeline_wheel (Path): The pipeline's wheel.
    lmcrf_wheel (Path): spacy-lmcrf's wheel, the version the pipeline requires.
    target_requirements (List[str]): What the target environment must have already (torch,
        spaCy ...): the requirements of both wheels that are not in the output directory.
    install_command (str): The pip command that installs the pipeline from the directory.
    """

    package_name: str
    package_dir: Path
    pipeline_wheel: Path
    lmcrf_wheel: Path
    target_requirements: List[str]
    install_command: str


def package_cli(
    input_dir: Path = Arg(..., help="Directory with pipeline data", exists=True, file_okay=False),
    output_dir: Path = Arg(..., help="Directory for the wheels (made if missing)", file_okay=False),
    code_paths: str = Opt(
        "", "--code", "-c", help="Comma-separated Python files with more code, as spacy package's"
    ),
    meta_path: Optional[Path] = Opt(
        None, "--meta-path", "--meta", "-m", help="Path to meta.json", exists=True, dir_okay=False
    ),
    create_meta: bool = Opt(
        False, "--create-meta", "-C", help="Create meta.json, even if one exists"
    ),
    name: Optional[str] = Opt(None, "--name", "-n", help="Package name to override meta"),
    version: Optional[str] = Opt(None, "--version", "-v", help="Package version to override meta"),
    build: str = Opt(
        "wheel", "--build", "-b", help="Comma-separated: wheel (always built), sdist (spaCy's)"
    ),
    force: bool = Opt(False, "--force", "-f", "-F", help="Replace the package directory if there"),
    require_parent: bool = Opt(
        True, "--require-parent/--no-require-parent", help="Include spacy in the requirements"
    ),
):
    """Package a trained pipeline as `spacy package` does and put in OUTPUT_DIR both the
    pipeline's wheel and a wheel of spacy-lmcrf itself, the version the pipeline requires,
    which no package index serves. Then, where torch and spaCy are installed,
    `pip install --no-index --find-links OUTPUT_DIR LANG_NAME` installs the pipeline and
    `spacy.load("LANG_NAME")` runs it. spacy-lmcrf's wheel is built from its source tree when
    it is installed from one (editable or not), otherwise repacked from its installed files.
    Building wheels offline needs setuptools>=70.1 (or the older `wheel` package)."""
    msg = Printer()
    try:
        package_pipeline(
            input_dir,
            output_dir,
            name=name,
            version=version,
            meta_path=meta_path,
            code_paths=[Path(path) for path in string_to_list(code_paths)],
            create_meta=create_meta,
            sdist=build_formats(build),
            force=force,
            require_parent=require_parent,
        )
    except PackagingError as err:
        msg.fail(str(err), exits=1)


def package_pipeline(
    input_dir: Path,
    output_dir: Path,
    *,
    name: Optional[str] = None,
    version: Optional[str] = None,
    meta_path: Optional[Path] = None,
    code_paths: Sequence[Path] = (),
    create_meta: bool = False,
    sdist: bool = False,
    force: bool = False,
    require_parent: bool = True,
    silent: bool = False,
) -> PackagedPipeline:
    """Package the pipeline in input_dir with spaCy's `package` and leave in output_dir its
    package directory, its wheel and spacy-lmcrf's wheel. Everything is built in a
    temporary directory inside output_dir and moved in place at the end, so a failure
    leaves output_dir as it was. spaCy's own checks exit as `spacy package` does.

    input_dir (Path): The trained pipeline (e.g. training/model-best).
    output_dir (Path): Where the package directory and the wheels go; made if missing.
    name (Optional[str]): The package name, overriding meta.json's (the language is prefixed).
    version (Optional[str]): The package version, overriding meta.json's.
    meta_path (Optional[Path]): A meta.json to use instead of input_dir's.
    code_paths (Sequence[Path]): Python files with additional code, as `spacy package --code`.
    create_meta (bool): Ask for the meta.json settings, as `spacy package --create-meta`.
    sdist (bool): Also build spaCy's sdist (in the package directory's dist/).
    force (bool): Replace a package directory of the same name in output_dir.
    require_parent (bool): Include spacy in the pipeline's requirements.
    silent (bool): Print nothing.
    RETURNS (PackagedPipeline): The package directory, the two wheels and the pip command.
    """
    msg = Printer(no_print=silent, pretty=not silent)
    check_can_build_wheels()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lmcrf-package-", dir=output_dir) as tmp:
        staging = Path(tmp)
        spacy_package(
            Path(input_dir),
            staging,
            meta_path=meta_path,
            code_paths=list(code_paths),
            name=name,
            version=version,
            create_meta=create_meta,
            create_sdist=sdist,
            create_wheel=False,
            require_parent=require_parent,
            force=False,
            silent=silent,
        )
        staged_package = only_directory(staging)
        package_dir = output_dir / staged_package.name
        if package_dir.exists() and not force:
            raise PackagingError(f"{package_dir} already exists: remove it or package with --force")
        wheels = staging / "wheels"
        pipeline_wheel = build_wheel(staged_package, wheels)
        msg.good("Built the pipeline's wheel", pipeline_wheel.name)
        lmcrf_wheel = build_lmcrf_wheel(wheels)
        msg.good("Built spacy-lmcrf's wheel", lmcrf_wheel.name)
        package_name = read_wheel_metadata(pipeline_wheel)["Name"]
        meta = srsly.read_json(staged_package / "meta.json")
        target_requirements = requirements_left_to_target(
            meta.get("requirements", []), read_wheel_metadata(lmcrf_wheel)
        )
        if package_dir.exists():
            shutil.rmtree(package_dir)
        shutil.move(str(staged_package), str(package_dir))
        for wheel in (pipeline_wheel, lmcrf_wheel):
            shutil.move(str(wheel), str(output_dir / wheel.name))
    command = install_command(output_dir, package_name)
    msg.good(f"Packaged {package_name}", f"{package_dir}, wheels in {output_dir}")
    msg.info("The target environment must have already", ", ".join(target_requirements))
    msg.text("Install it, wherever torch and spaCy are, with:")
    if not silent:
        print(command)  # unwrapped, to copy
    return PackagedPipeline(
        package_name=package_name,
        package_dir=package_dir,
        pipeline_wheel=output_dir / pipeline_wheel.name,
        lmcrf_wheel=output_dir / lmcrf_wheel.name,
        target_requirements=target_requirements,
        install_command=command,
    )


def build_formats(build: str) -> bool:
    """Read --build: the wheels are always built, sdist is optional.

    build (str): Comma-separated formats, "wheel" and/or "sdist".
    RETURNS (bool): Whether to build spaCy's sdist too.
    """
    formats = set(string_to_list(build))
    unknown = formats - {"wheel", "sdist"}
    if unknown:
        raise PackagingError(
            f"Unknown build format(s) {', '.join(sorted(unknown))}: lmcrf package always builds "
            "wheels, --build takes wheel and/or sdist"
        )
    return "sdist" in formats


def check_can_build_wheels() -> None:
    """Fail early unless pip can build wheels here without fetching anything: pip itself,
    and setuptools' bdist_wheel command (setuptools>=70.1 has it, older ones take it from
    the `wheel` package)."""
    if importlib.util.find_spec("pip") is None:
        raise PackagingError(f"pip is not installed in {sys.executable}'s environment")
    if not metadata.entry_points(group="distutils.commands", name="bdist_wheel"):
        raise PackagingError(
            "setuptools here cannot build wheels (no bdist_wheel command): "
            "pip install -U 'setuptools>=70.1'"
        )


def only_directory(parent: Path) -> Path:
    """The one directory that spaCy's package made in parent."""
    directories = [path for path in parent.iterdir() if path.is_dir()]
    if len(directories) != 1:
        raise PackagingError(f"spacy package made {len(directories)} directories, expected one")
    return directories[0]


def build_wheel(source_dir: Path, wheel_dir: Path) -> Path:
    """Build source_dir's wheel with pip, offline: no dependencies, no build isolation.

    source_dir (Path): A directory with setup.py or pyproject.toml.
    wheel_dir (Path): Where the wheel goes (made if missing).
    RETURNS (Path): The wheel.
    """
    wheel_dir.mkdir(parents=True, exist_ok=True)
    before = set(wheel_dir.glob("*.whl"))
    # fmt: off
    command = [
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", str(wheel_dir), str(source_dir),
    ]
    # fmt: on
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        raise PackagingError(f"pip could not build a wheel of {source_dir} (its output is above)")
    built = sorted(set(wheel_dir.glob("*.whl")) - before)
    if len(built) != 1:
        raise PackagingError(f"pip wheel {source_dir} made {len(built)} wheels, expected one")
    return built[0]


def build_lmcrf_wheel(wheel_dir: Path) -> Path:
    """spacy-lmcrf's wheel: built from its source tree when the imported package lives in
    one (an editable install or a checkout), else repacked from its installed files.

    wheel_dir (Path): Where the wheel goes (made if missing).
    RETURNS (Path): The wheel.
    """
    root = source_root()
    if root is not None:
        with tempfile.TemporaryDirectory(prefix="spacy-lmcrf-source-") as tmp:
            return build_wheel(copy_source(root, Path(tmp) / root.name), wheel_dir)
    return repack_installed(installed_distribution(), wheel_dir)


def source_root() -> Optional[Path]:
    """The source tree the imported spacy_lmcrf comes from, or None when it is installed."""
    root = PACKAGE_DIR.parent
    if (root / "setup.py").exists() or (root / "pyproject.toml").exists():
        return root
    return None


def copy_source(root: Path, destination: Path) -> Path:
    """Copy what the wheel is built from: root's files and the package, without caches.
    A copy, because setuptools reuses ROOT/build/lib, where a module deleted from the source
    would live on into the wheel, and the root's other folders (training output, corpora)
    can hold gigabytes the wheel does not need.

    root (Path): The source tree (setup.py, README.md, spacy_lmcrf/ ...).
    destination (Path): The new directory.
    RETURNS (Path): destination.
    """
    destination.mkdir(parents=True)
    for path in root.iterdir():
        if path.is_file():
            shutil.copy2(path, destination / path.name)
    shutil.copytree(
        PACKAGE_DIR,
        destination / PACKAGE_DIR.name,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return destination


def installed_distribution() -> metadata.Distribution:
    """The installed spacy-lmcrf distribution, which must list its files."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise PackagingError(
            f"{DISTRIBUTION} is imported from {PACKAGE_DIR} but not installed: "
            "pip install it (pip install -e SOURCE_DIR) and package again"
        ) from None
    if dist.files is None:
        raise PackagingError(
            f"{DISTRIBUTION} {dist.version} is installed without a record of its files: "
            "reinstall it from its source (pip install SOURCE_DIR) and package again"
        )
    return dist


def repack_installed(dist: metadata.Distribution, wheel_dir: Path) -> Path:
    """Rebuild the wheel an installed pure-Python distribution came from out of its
    installed files (those its RECORD lists, without bytecode and pip's own records).

    dist (metadata.Distribution): The installed distribution.
    wheel_dir (Path): Where the wheel goes (made if missing).
    RETURNS (Path): The wheel.
    """
    files = [file for file in dist.files or [] if not is_install_artifact(file.parts)]
    dist_info = next(file.parts[0] for file in files if file.parts[0].endswith(".dist-info"))
    outside = [str(file) for file in files if file.parts[0] == ".."]
    if outside:
        raise PackagingError(
            f"{dist.name} installed files outside site-packages ({outside[0]}): "
            "reinstall it from its source and package again"
        )
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheel = wheel_dir / f"{wheel_name_part(dist.name)}-{dist.version}-{wheel_tag(dist)}.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            data = Path(str(dist.locate_file(file))).read_bytes()
            archive.writestr(file.as_posix(), data)
            records.append(f"{file.as_posix()},{record_hash(data)},{len(data)}")
        records.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def is_install_artifact(parts: Tuple[str, ...]) -> bool:
    """Whether an installed file was made by the install, not taken from the wheel."""
    if "__pycache__" in parts or parts[-1].endswith(".pyc"):
        return True
    return parts[0].endswith(".dist-info") and parts[-1] in INSTALL_RECORDS


def wheel_tag(dist: metadata.Distribution) -> str:
    """The wheel's compressed tag set (e.g. py3-none-any) from its WHEEL file's Tag lines."""
    wheel_info = email.parser.Parser().parsestr(dist.read_text("WHEEL") or "")
    tags = [tag.split("-") for tag in wheel_info.get_all("Tag") or []]
    if not tags:
        raise PackagingError(f"{dist.name}'s WHEEL file names no tag: reinstall it from source")
    return "-".join(".".join(dict.fromkeys(parts)) for parts in zip(*tags))


def wheel_name_part(name: str) -> str:
    """A distribution name as wheel file names spell it (spacy-lmcrf -> spacy_lmcrf)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def record_hash(data: bytes) -> str:
    """A RECORD hash: sha256, urlsafe base64 without padding."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode('ascii')}"


def read_wheel_metadata(wheel: Path) -> Message:
    """The METADATA of a wheel (Name, Version, Requires-Dist ...)."""
    with zipfile.ZipFile(wheel) as archive:
        path = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(path).decode("utf8"))


def requirements_left_to_target(
    pipeline_requirements: Iterable[str], lmcrf_metadata: Message
) -> List[str]:
    """Check that spacy-lmcrf's wheel satisfies the pipeline's requirement on it, and list
    what else the two wheels require: the target environment must have it already.

    pipeline_requirements (Iterable[str]): meta.json's requirements, as spaCy wrote them.
    lmcrf_metadata (Message): The METADATA of spacy-lmcrf's wheel.
    RETURNS (List[str]): The other requirements, the pipeline's first, without extras'.
    """
    lmcrf_version = lmcrf_metadata["Version"]
    left: List[str] = []
    for requirement in pipeline_requirements:
        name, specifier = split_requirement(requirement)
        if normalise_name(name) != DISTRIBUTION:
            left.append(requirement)
        elif specifier and not is_compatible_version(lmcrf_version, specifier):
            raise PackagingError(
                f"The pipeline requires {requirement} but spacy-lmcrf is {lmcrf_version} here: "
                "install the version the pipeline was trained with and package again"
            )
    for requirement in lmcrf_metadata.get_all("Requires-Dist") or []:
        requirement, _, marker = requirement.partition(";")
        if "extra" not in marker and requirement.strip() not in left:
            left.append(requirement.strip())
    return left


def normalise_name(name: str) -> str:
    """A distribution name compared as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install_command(wheel_dir: Path, package_name: str) -> str:
    """The pip command that installs package_name offline from wheel_dir."""
    wheels = shlex.quote(str(wheel_dir.resolve()))
    return f"pip install --no-index --find-links {wheels} {package_name}"

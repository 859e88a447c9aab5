"""Helpers shared by the benchmark scripts: provenance of a figure, JSON output, globs.

The scripts import this module by its plain name (`from common import ...`): Python puts the
folder of the script it runs (`python benchmarks/scripts/NAME.py`, from any folder) first on
sys.path, so no path setup is needed there; tests that import a script put this folder on
sys.path themselves. Paths below are resolved from this file, never from the working directory.
"""

import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

# the repository (benchmarks/scripts/common.py -> .), and the folder of committed outputs
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def git_commit() -> str:
    """The repository's short commit, with "+dirty" when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def cpu_description() -> str:
    """CPU model and core count, e.g. 'Intel(R) Xeon(R) ... (2 cores)'."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"


def provenance() -> Dict[str, Any]:
    """What RESULTS.md asks of every figure: commit, machine, date (and the command)."""
    return {
        "commit": git_commit(),
        "cpu": cpu_description(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }


def write_json(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")


def emit_table(table: str, data: Any, output: Optional[Path], markdown: Optional[Path]) -> None:
    """Print a markdown table; write data (with provenance) to output and the table to markdown."""
    print(table, end="")
    if output:
        write_json(output, {**data, **provenance()})
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(table, encoding="utf8")


def mean_std(values: Sequence[float]) -> Dict[str, Any]:
    """Mean, sample standard deviation (None for one value), n and the values."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
        "values": list(values),
    }


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf8"))


SEED = "{seed}"


def expand(pattern: str, n_seeds: Optional[int] = None) -> List[Path]:
    """The files of a pattern: with "{seed}", exactly seeds 0 .. n_seeds-1 (each must
    exist); otherwise the glob's matches, sorted (at least one)."""
    if SEED in pattern:
        if n_seeds is None or n_seeds < 1:
            raise ValueError(f"{pattern!r} has {SEED}: give the number of seeds (--n-seeds)")
        paths = [Path(pattern.replace(SEED, str(seed))) for seed in range(n_seeds)]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise FileNotFoundError(f"missing: {', '.join(missing)}")
        return paths
    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no file matches {pattern!r}")
    return paths


def parse_groups(
    specs: Sequence[str], n_seeds: Optional[int] = None
) -> List[Tuple[str, List[Path]]]:
    """Parse "NAME=PATTERN" (or plain "PATTERN", named after itself) into named file lists."""
    groups = []
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        if not sep:
            name, pattern = spec, spec
        if not name or not pattern:
            raise ValueError(f"expected NAME=PATTERN or PATTERN, got {spec!r}")
        groups.append((name, expand(pattern, n_seeds)))
    return groups

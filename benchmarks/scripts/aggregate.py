"""Mean +/- standard deviation over seeds of the JSON results of several runs.

    python benchmarks/scripts/aggregate.py [NAME=]PATTERN [...] [--n-seeds N] \\
        [--keys test_f1 dev_f1] [--output summary.json] [--markdown summary.md]

Each PATTERN is one group of runs, e.g. the seeds of one system: a glob (quoted; expanded
here, so it works without a shell) or a path with "{seed}" and --n-seeds N, which takes
exactly seeds 0 .. N-1 (`lmcrf=metrics/bench/lmcrf/seed{seed}.json --n-seeds 3`).
The inputs are the JSON files of benchmarks/scripts/budget.py (summaries) or of
spacy_lmcrf.evaluate (metrics). For every key (default: those of DEFAULT_KEYS found in
the files) it reports the mean, the sample standard deviation (n - 1 in the
denominator; none for a single run), n and the values. A key missing from some files
of a group, or holding a non-number, is an error.
"""

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from common import emit_table, mean_std, parse_groups, read_json

DEFAULT_KEYS = (
    "test_f1",
    "dev_f1",
    "test_accuracy",
    "dev_accuracy",
    "f1",
    "precision",
    "recall",
    "accuracy",
    "steps",
    "train_seconds",
    "best_dev_score_during_training",
)


def aggregate(paths: Sequence[Path], keys: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """mean_std of each key over the JSON files."""
    results = [read_json(path) for path in paths]
    if keys is None:
        keys = [key for key in DEFAULT_KEYS if any(key in r for r in results)]
        if not keys:
            raise ValueError(f"none of {', '.join(DEFAULT_KEYS)} is in {paths[0]}")
    stats = {}
    for key in keys:
        values = []
        for path, result in zip(paths, results):
            value = result.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"{path}: {key!r} is {value!r}, not a number")
            values.append(float(value))
        stats[key] = mean_std(values)
    return {"files": [str(p) for p in paths], "metrics": stats}


def format_stat(stat: Dict[str, Any]) -> str:
    if stat["std"] is None:
        return f"{stat['mean']:.2f} (n=1)"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f} (n={stat['n']})"


def markdown_table(groups: Dict[str, Dict[str, Any]]) -> str:
    """One row per group, one column per key."""
    keys: List[str] = []
    for group in groups.values():
        keys.extend(k for k in group["metrics"] if k not in keys)
    lines = ["| run | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, group in groups.items():
        cells = [format_stat(group["metrics"][k]) if k in group["metrics"] else "–" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("groups", nargs="+", metavar="[NAME=]PATTERN")
    parser.add_argument("--n-seeds", type=int, default=None, help='seeds for "{seed}" patterns')
    parser.add_argument("--keys", nargs="+", default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        groups = {
            name: aggregate(paths, args.keys)
            for name, paths in parse_groups(args.groups, args.n_seeds)
        }
    except (OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    emit_table(markdown_table(groups), {"groups": groups}, args.output, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

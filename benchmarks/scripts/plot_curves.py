"""Plot dev score against wall-clock minutes for several runs into one PNG.

    python benchmarks/scripts/plot_curves.py [NAME=]PATTERN [...] [--n-seeds N] \\
        --output curves.png [--budget-minutes 30] [--title TITLE]

Each PATTERN (a glob, quoted, or a path with "{seed}" and --n-seeds N) is one group of
runs drawn in one colour, one line per file (e.g. per seed): summaries of
benchmarks/scripts/budget.py (their "curve") or the JSON-lines logs of
spacy_lmcrf.TimedLogger.v1. The y axis is the dev score spaCy's training loop computes at
each evaluation (F1 in percent for NER and chunking), the x axis the wall-clock minutes
since training started. Needs matplotlib (the `bench` extra: pip install -e ".[bench]").
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from common import parse_groups

Curve = List[Tuple[float, float]]


def read_curve(path: Path) -> Curve:
    """(minutes, score in percent) points of a budget summary or a TimedLogger log."""
    text = Path(path).read_text(encoding="utf8")
    if path.suffix == ".jsonl":
        points = [
            (r["seconds"], None if r["score"] is None else 100 * r["score"])
            for r in map(json.loads, filter(None, text.splitlines()))
            if r.get("event") == "evaluate"
        ]
    else:
        summary = json.loads(text)
        if "curve" not in summary:
            raise ValueError(
                f"{path}: no 'curve' (expected a benchmarks/scripts/budget.py summary)"
            )
        points = [(p["seconds"], p["score"]) for p in summary["curve"]]
    curve = [(seconds / 60, score) for seconds, score in points if score is not None]
    if not curve:
        raise ValueError(f"{path}: no evaluation with a score")
    return curve


def plot(
    groups: Sequence[Tuple[str, List[Curve]]],
    output: Path,
    *,
    budget_minutes: Optional[float] = None,
    title: str = "Dev score against training time",
    ylabel: str = "dev F1 (%)",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, curves) in enumerate(groups):
        colour = colours[i % len(colours)]
        for j, curve in enumerate(curves):
            xs, ys = zip(*curve)
            label = f"{name} (n={len(curves)})" if j == 0 else None
            ax.plot(xs, ys, color=colour, alpha=0.8, linewidth=1.3, marker=".", label=label)
    if budget_minutes:
        ax.axvline(budget_minutes, color="grey", linestyle="--", linewidth=1, label="budget")
    ax.set_xlabel("wall-clock minutes since training started")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("groups", nargs="+", metavar="[NAME=]PATTERN")
    parser.add_argument("--n-seeds", type=int, default=None, help='seeds for "{seed}" patterns')
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--title", default="Dev score against training time")
    parser.add_argument("--ylabel", default="dev F1 (%)")
    args = parser.parse_args(argv)
    try:
        groups = [
            (name, [read_curve(p) for p in paths])
            for name, paths in parse_groups(args.groups, args.n_seeds)
        ]
    except (OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    plot(
        groups,
        args.output,
        budget_minutes=args.budget_minutes,
        title=args.title,
        ylabel=args.ylabel,
    )
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

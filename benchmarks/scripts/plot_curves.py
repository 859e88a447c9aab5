"""Plot dev score against wall-clock minutes (or epochs) for several runs into one PNG.

    python benchmarks/scripts/plot_curves.py [NAME=]PATTERN [...] [--n-seeds N] \\
        --output curves.png [--budget-minutes 30] [--title TITLE] \\
        [--x epochs --steps-per-epoch 1405]

Each PATTERN (a glob, quoted, or a path with "{seed}" and --n-seeds N) is one group of
runs drawn in one colour, one line per file (e.g. per seed): summaries of
benchmarks/scripts/budget.py (their "curve") or the JSON-lines logs of
spacy_lmcrf.TimedLogger.v1. The y axis is the dev score spaCy's training loop computes at
each evaluation (F1 in percent for NER and chunking), the x axis the wall-clock minutes
since training started, or with `--x epochs` the passes over the training data (the step
divided by --steps-per-epoch, the number of batches in one epoch). Needs matplotlib (the
`bench` extra: pip install -e ".[bench]").
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from common import parse_groups

Curve = List[Tuple[float, float]]


def read_curve(path: Path, x: str = "minutes", steps_per_epoch: Optional[int] = None) -> Curve:
    """(minutes or epochs, score in percent) points of a budget summary or a TimedLogger log."""
    if x not in ("minutes", "epochs"):
        raise ValueError(f"x must be 'minutes' or 'epochs', not {x!r}")
    if x == "epochs" and not steps_per_epoch:
        raise ValueError("epochs on the x axis need steps_per_epoch")
    text = Path(path).read_text(encoding="utf8")
    if path.suffix == ".jsonl":
        points = [
            (r["seconds"], r.get("step"), None if r["score"] is None else 100 * r["score"])
            for r in map(json.loads, filter(None, text.splitlines()))
            if r.get("event") == "evaluate"
        ]
    else:
        summary = json.loads(text)
        if "curve" not in summary:
            raise ValueError(
                f"{path}: no 'curve' (expected a benchmarks/scripts/budget.py summary)"
            )
        points = [(p["seconds"], p.get("step"), p["score"]) for p in summary["curve"]]
    if x == "epochs" and any(step is None for _, step, _ in points):
        raise ValueError(f"{path}: an evaluation without its step, so no epochs")
    curve = [
        (seconds / 60 if x == "minutes" else step / steps_per_epoch, score)
        for seconds, step, score in points
        if score is not None
    ]
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
    xlabel: str = "wall-clock minutes since training started",
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
    ax.set_xlabel(xlabel)
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
    parser.add_argument("--x", choices=("minutes", "epochs"), default="minutes")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=None, help="batches per epoch, for --x epochs"
    )
    args = parser.parse_args(argv)
    try:
        groups = [
            (name, [read_curve(p, args.x, args.steps_per_epoch) for p in paths])
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
        xlabel=(
            "wall-clock minutes since training started"
            if args.x == "minutes"
            else "epochs (passes over the training data)"
        ),
    )
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

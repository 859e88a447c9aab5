"""One task's side-by-side table from budget.py's summaries: each system's seeds, mean ± std.

    python benchmarks/scripts/task_table.py --n-seeds 2 \\
        lmcrf=metrics/bench_wsj_cpu/lmcrf/seed{seed}.json \\
        spacy_tagger=metrics/bench_wsj_cpu/spacy_tagger/seed{seed}.json \\
        [--output table.json] [--markdown table.md]

One row per NAME=PATTERN group (patterns as in aggregate.py). Columns: the steps reached
(mean), training words/s (the words seen at the last dev evaluation over its wall-clock
seconds from the first step, the evaluations included: the throughput the budget bought),
the dev and test score of the selected model (F1, or token accuracy for `--kind tags` runs;
mean ± sample std over the seeds), each seed's test (dev) score, and labeling speed on the
test set (words/s of spacy_lmcrf.evaluate, mean). The runs of a table must share one metric.
"""

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from common import emit_table, mean_std, parse_groups, read_json


def train_words_per_second(summary: Dict[str, Any]) -> float:
    """Words seen by the last dev evaluation of the run's curve, over its seconds."""
    last = summary["curve"][-1]
    if last["seconds"] <= 0:
        raise ValueError("the curve's last evaluation has no elapsed time")
    return last["words"] / last["seconds"]


def _run(path: Path) -> Dict[str, Any]:
    """A budget.py summary, checked for what the table reads."""
    run = read_json(path)
    keys = ["metric", "seed", "steps", "curve", "test", "budget_minutes"]
    missing = [key for key in keys if key not in run]
    if not missing:
        metric = run["metric"]
        missing = [k for k in (f"dev_{metric}", f"test_{metric}") if k not in run]
        if not run["curve"]:
            missing.append("curve (empty)")
    if missing:
        raise ValueError(f"{path}: not a budget.py summary (no {', '.join(missing)})")
    return run


def system_row(paths: Sequence[Path]) -> Dict[str, Any]:
    """The mean and per-seed figures of one system's runs."""
    runs = [_run(path) for path in paths]
    metrics = {run["metric"] for run in runs}
    if len(metrics) != 1:
        raise ValueError(f"{paths[0]}: the runs of one system mix metrics {sorted(metrics)}")
    metric = metrics.pop()
    dev = mean_std([run[f"dev_{metric}"] for run in runs])
    test = mean_std([run[f"test_{metric}"] for run in runs])
    return {
        "metric": metric,
        "files": [str(path) for path in paths],
        "seeds": [run["seed"] for run in runs],
        "steps": statistics.fmean(run["steps"] for run in runs),
        "train_words_per_second": statistics.fmean(train_words_per_second(r) for r in runs),
        "dev": dev["values"],
        "test": test["values"],
        "dev_mean": dev["mean"],
        "dev_std": dev["std"],
        "test_mean": test["mean"],
        "test_std": test["std"],
        "label_words_per_second": statistics.fmean(r["test"]["words_per_second"] for r in runs),
        "budget_minutes": sorted({run["budget_minutes"] for run in runs}),
    }


def _mean_std(mean: float, std: Optional[float]) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def markdown_table(rows: Dict[str, Dict[str, Any]]) -> str:
    """The rows as RESULTS.md's tables write them."""
    metric = {row["metric"] for row in rows.values()}
    score = "accuracy" if metric == {"accuracy"} else "F1"
    lines = [
        f"| system | seeds | steps (mean) | training words/s | dev {score} | test {score} "
        "| test (dev) by seed | labeling words/s, test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        by_seed = ", ".join(f"{test:.2f} ({dev:.2f})" for test, dev in zip(row["test"], row["dev"]))
        lines.append(
            f"| {name} | {len(row['seeds'])} | {row['steps']:,.0f} "
            f"| {row['train_words_per_second']:,.0f} "
            f"| {_mean_std(row['dev_mean'], row['dev_std'])} "
            f"| {_mean_std(row['test_mean'], row['test_std'])} | {by_seed} "
            f"| {row['label_words_per_second']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("groups", nargs="+", metavar="NAME=PATTERN")
    parser.add_argument("--n-seeds", type=int, default=None, help='seeds for "{seed}" patterns')
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        rows = {name: system_row(paths) for name, paths in parse_groups(args.groups, args.n_seeds)}
    except (OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    emit_table(markdown_table(rows), {"systems": rows}, args.output, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

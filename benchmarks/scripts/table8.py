"""Yang et al. 2016's Table 8: a target task trained on a fraction r of its training
sentences, separately and jointly with another task at full labels.

    python benchmarks/scripts/table8.py --root metrics/table8 --n-seeds N \\
        ROW [ROW ...] [--output table8.json] [--markdown table8.md]

Each ROW is TARGET:RATE:JOINT (e.g. ner:0.1:pos). Its runs are the summaries of
benchmarks/scripts/budget.py: ROOT/TARGET_rRATE/sep/seed{seed}.json (the target alone) and
ROOT/TARGET_rRATE/joint_JOINT/seed{seed}.json (trained with JOINT), seeds 0 .. N-1.
The score is the test F1 (test accuracy for tags) of model-best; the table gives
Sep, Joint (mean +/- std over seeds) and Delta = mean Joint - mean Sep, the training
steps of both, and Yang et al.'s Table 8 figures for the same row; the JSON adds the dev
scores. A row none of whose runs exist is listed as not run; a row with some of its
seeds missing is an error.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from aggregate import format_stat
from common import mean_std, provenance, read_json, write_json

NAMES = {"ner": "NER", "en": "Eng", "es": "Span", "pos": "POS", "chunk": "Chunk"}

# Yang et al. 2016, Table 8: (target, rate, joint task) -> (Sep., Joint, Delta). English NER
# is "ner" whether its partner is POS or Spanish. The extracted text swaps Sep. and Joint of
# "Span 0.3"; they are given here in the order its Delta (+0.61) implies.
PAPER = {
    ("es", "0.1", "ner"): (74.53, 76.52, 1.99),
    ("es", "0.3", "ner"): (80.20, 80.81, 0.61),
    ("ner", "0.1", "es"): (86.21, 86.51, 0.30),
    ("ner", "0.3", "es"): (88.54, 88.79, 0.25),
    ("ner", "0.1", "pos"): (86.21, 87.02, 0.81),
    ("ner", "0.3", "pos"): (88.54, 89.16, 0.62),
    ("pos", "0.1", "ner"): (96.59, 96.79, 0.20),
    ("pos", "0.3", "ner"): (97.03, 97.14, 0.11),
    ("chunk", "0.1", "ner"): (90.65, 91.16, 0.51),
    ("chunk", "0.3", "ner"): (92.51, 92.87, 0.36),
}


def task_name(task: str, partner: str) -> str:
    """The paper's name for a task: English NER is "Eng" beside Spanish, "NER" elsewhere."""
    if task == "ner" and partner == "es":
        return "Eng"
    return NAMES.get(task, task)


def run_files(root: Path, target: str, rate: str, setting: str, n_seeds: int) -> List[Path]:
    return [root / f"{target}_r{rate}" / setting / f"seed{seed}.json" for seed in range(n_seeds)]


def row(root: Path, spec: str, n_seeds: int) -> Dict[str, Any]:
    try:
        target, rate, joint = spec.split(":")
        rate_value = float(rate)
    except ValueError:
        raise ValueError(f"row {spec!r} is not TARGET:RATE:JOINT") from None
    result: Dict[str, Any] = {
        "target": target,
        "rate": rate_value,
        "joint_task": joint,
        "paper": PAPER.get((target, f"{rate_value:g}", joint)),
    }
    settings = (("sep", "sep"), ("joint", f"joint_{joint}"))
    files = {
        setting: run_files(root, target, rate, folder, n_seeds) for setting, folder in settings
    }
    present = [path for paths in files.values() for path in paths if path.exists()]
    if not present:
        result["not_run"] = True
        return result
    for setting, paths in files.items():
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise ValueError(
                f"row {spec}: {len(missing)} of its runs are missing: {', '.join(missing)}"
            )
        summaries = [read_json(path) for path in paths]
        metric = summaries[0]["metric"]
        result[setting] = {
            "files": [str(p) for p in paths],
            "metric": metric,
            "test": mean_std([s[f"test_{metric}"] for s in summaries]),
            "dev": mean_std([s[f"dev_{metric}"] for s in summaries]),
            "steps": mean_std([s["steps"] for s in summaries]),
            "budget_minutes": summaries[0]["budget_minutes"],
            "commit": sorted({s.get("commit", "unknown") for s in summaries}),
        }
    result["delta"] = result["joint"]["test"]["mean"] - result["sep"]["test"]["mean"]
    return result


def markdown(rows: Sequence[Dict[str, Any]]) -> str:
    lines = [
        "| Task | J. Task | Sep. | Joint | Delta | Steps (Sep. / Joint) | "
        "Paper: Sep. / Joint / Delta |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        task = f"{task_name(r['target'], r['joint_task'])} {r['rate']:g}"
        paper = (
            "-"
            if r["paper"] is None
            else f"{r['paper'][0]:.2f} / {r['paper'][1]:.2f} / {r['paper'][2]:+.2f}"
        )
        if r.get("not_run"):
            ours = "not run | not run | - | -"
        else:
            steps = f"{r['sep']['steps']['mean']:,.0f} / {r['joint']['steps']['mean']:,.0f}"
            ours = (
                f"{format_stat(r['sep']['test'])} | {format_stat(r['joint']['test'])} "
                f"| {r['delta']:+.2f} | {steps}"
            )
        lines.append(f"| {task} | {task_name(r['joint_task'], r['target'])} | {ours} | {paper} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", nargs="+", help="TARGET:RATE:JOINT")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--n-seeds", type=int, required=True)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        rows = [row(args.root, spec, args.n_seeds) for spec in args.rows]
    except (OSError, ValueError, KeyError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    table = markdown(rows)
    if args.output:
        write_json(args.output, {"rows": rows, **provenance()})
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table, encoding="utf8")
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

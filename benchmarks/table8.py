"""Yang et al. 2016's Table 8: a target task trained on a fraction r of its training
sentences, separately and jointly with another task at full labels.

    python benchmarks/table8.py --root metrics/table8 --n-seeds N \\
        ROW [ROW ...] [--output table8.json] [--markdown table8.md]

Each ROW is TARGET:RATE:JOINT (e.g. ner:0.1:pos). Its runs are the summaries of
benchmarks/budget.py: ROOT/TARGET_rRATE/sep/seed{seed}.json (the target alone) and
ROOT/TARGET_rRATE/joint_JOINT/seed{seed}.json (trained with JOINT), seeds 0 .. N-1.
The score is the test F1 (test accuracy for tags) of model-best; the table gives
Sep, Joint (mean +/- std over seeds) and Delta = mean Joint - mean Sep, with dev
scores and the training steps beside them in the JSON.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from aggregate import format_stat, mean_std
from common import provenance, read_json, write_json

NAMES = {"ner": "NER", "en": "Eng", "es": "Span", "pos": "POS", "chunk": "Chunk"}


def run_files(root: Path, target: str, rate: str, setting: str, n_seeds: int) -> List[Path]:
    return [root / f"{target}_r{rate}" / setting / f"seed{seed}.json" for seed in range(n_seeds)]


def row(root: Path, spec: str, n_seeds: int) -> Dict[str, Any]:
    try:
        target, rate, joint = spec.split(":")
    except ValueError:
        raise ValueError(f"row {spec!r} is not TARGET:RATE:JOINT") from None
    result: Dict[str, Any] = {"target": target, "rate": float(rate), "joint_task": joint}
    for setting, folder in (("sep", "sep"), ("joint", f"joint_{joint}")):
        summaries = [read_json(path) for path in run_files(root, target, rate, folder, n_seeds)]
        metric = summaries[0]["metric"]
        result[setting] = {
            "files": [str(p) for p in run_files(root, target, rate, folder, n_seeds)],
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
        "| Task | J. Task | Sep. | Joint | Delta |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        task = f"{NAMES.get(r['target'], r['target'])} {r['rate']:g}"
        lines.append(
            f"| {task} | {NAMES.get(r['joint_task'], r['joint_task'])} | {format_stat(r['sep']['test'])} "
            f"| {format_stat(r['joint']['test'])} | {r['delta']:+.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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

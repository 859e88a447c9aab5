"""Train a config for a fixed wall-clock budget, then score model-best on dev and test.

    python benchmarks/scripts/budget.py CONFIG OUTPUT_DIR --train TRAIN.spacy --dev DEV.spacy \\
        --test TEST.spacy [--vectors VECTORS_DIR] --budget-minutes 30 [--seed 0] \\
        [--kind ner] [--spans-key chunks] [--gpu-id -1] [--summary SUMMARY.json] \\
        [--name NAME] [--vectors-attr LOWER] [--training.eval_frequency 200 ...]

Training is `python -m spacy train` on a copy of CONFIG (OUTPUT_DIR/config.budget.cfg)
whose logger is `spacy_lmcrf.TimedLogger.v1` (the console table, plus
OUTPUT_DIR/log.jsonl: one line per evaluation with the wall-clock seconds) and
whose [training.before_update] is `spacy_lmcrf.stop_after_minutes.v1`: at the
first step that starts after the budget, spaCy's loop is left cleanly (model-best
was saved at each improvement, model-last is saved on the way out, `spacy train`
exits with status 0). The clock starts at the first training step, so
initialization (vectors, vocabularies) is outside the budget; dev evaluations and
checkpoint saving are inside it, as they are in any real training run. The run
may overshoot by one step plus the evaluation running when the budget ends.
`--budget-minutes 0` trains until the config's own stopping rules.

`--vectors-attr LOWER` gives spaCy's own components their vectors' key attribute, which
spaCy 3.8.18 drops when it saves vectors (see vectors_attr.py): it is written into the
vectors directory's vocab/vectors.cfg before training and into model-best's and
model-last's before they are scored, as a user who knows the bug would do.

Any other `--section.key value` option is passed to `spacy train` as a config
override. --train and --dev go to [paths] train and dev, or to the variables named by
--train-var and --dev-var (a joint-training config has one pair per task, e.g.
ner_train / ner_dev); --corpus tags the evaluation docs with a corpus name (the
language of a cross-lingual pipeline, whose heads annotate only their own).

Then OUTPUT_DIR/model-best and model-last are scored on dev and the better one
(model-best on a tie) on test, because the budget ends between two dev
evaluations and the steps after the last one are only in model-last; scoring is
spacy_lmcrf.evaluate (conlleval counting on the gold tokens, cross-checked with
spaCy's Scorer), into OUTPUT_DIR/eval/{split}.{model}.{json,conll.txt}. The summary
JSON (default OUTPUT_DIR/summary.json) holds the config, budget, seed, steps and
seconds reached, best dev score seen during training, the dev score of each
candidate and which was selected, dev and test F1 (accuracy for --kind tags) of
the selected model, the learning curve (dev score against seconds)
and where and when it ran.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from spacy.util import load_config
from thinc.api import Config

from common import provenance, write_json
from vectors_attr import set_vectors_attr

from spacy_lmcrf.evaluate import evaluate

LOGGER = "spacy_lmcrf.TimedLogger.v1"
STOPPER = "spacy_lmcrf.stop_after_minutes.v1"
CHAIN = "spacy_lmcrf.before_update_all.v1"


def budget_config(config_path: Path, log_path: Path, budget_minutes: float) -> Config:
    """CONFIG with the timed logger and, for a positive budget, the stopping callback."""
    config = load_config(config_path, interpolate=False)
    training = config["training"]
    if budget_minutes > 0:
        stopper = {"@callbacks": STOPPER, "minutes": budget_minutes}
        existing = training.get("before_update")
        if existing is None:
            training["before_update"] = stopper
        else:  # e.g. spacy_lmcrf.trim_heap.v1: run it, then the budget's check
            training["before_update"] = {
                "@callbacks": CHAIN,
                "*": {"existing": existing, "budget": stopper},
            }
    training["logger"] = {
        "@loggers": LOGGER,
        "path": str(log_path),
        "progress_bar": False,
        "console_output": True,
    }
    return config


def train_command(
    config_path: Path,
    output_dir: Path,
    *,
    train: Path,
    dev: Path,
    vectors: Optional[Path],
    seed: int,
    gpu_id: int,
    overrides: Sequence[str],
    train_var: str = "train",
    dev_var: str = "dev",
) -> List[str]:
    """The `spacy train` command line for one budgeted run."""
    command = [
        sys.executable,
        "-m",
        "spacy",
        "train",
        str(config_path),
        "--output",
        str(output_dir),
        f"--paths.{train_var}",
        str(train),
        f"--paths.{dev_var}",
        str(dev),
        "--training.seed",
        str(seed),
        "--gpu-id",
        str(gpu_id),
    ]
    if vectors is not None:
        command += ["--paths.vectors", str(vectors)]
    return command + list(overrides)


def read_log(path: Path) -> List[Dict[str, Any]]:
    """The TimedLogger's records, in order."""
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line]


def learning_curve(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Dev score (in percent) against wall-clock seconds, one point per evaluation."""
    return [
        {
            "seconds": r["seconds"],
            "step": r["step"],
            "epoch": r["epoch"],
            "words": r["words"],
            "score": None if r["score"] is None else 100 * r["score"],
        }
        for r in records
        if r.get("event") == "evaluate"
    ]


def summarize(
    *,
    name: str,
    config_path: Path,
    budget_minutes: float,
    seed: int,
    overrides: Sequence[str],
    records: Sequence[Dict[str, Any]],
    dev: Dict[str, Any],
    test: Dict[str, Any],
    kind: str,
    started: Dict[str, Any],
) -> Dict[str, Any]:
    """The run's summary (see the module docstring). `started` is the provenance taken
    when the run began: the commit trained is HEAD then, not when the run ends."""
    curve = learning_curve(records)
    end = next((r for r in reversed(records) if r.get("event") == "end"), None)
    if not curve or end is None:
        raise ValueError("the training log has no evaluation or no end record")
    metric = "accuracy" if kind == "tags" else "f1"
    scores = [point["score"] for point in curve if point["score"] is not None]
    return {
        "name": name,
        "config": str(config_path),
        "budget_minutes": budget_minutes,
        "seed": seed,
        "overrides": list(overrides),
        "kind": kind,
        "metric": metric,
        "steps": end["steps"],
        "train_seconds": end["seconds"],
        "stopped_by_budget": budget_minutes > 0 and end["seconds"] >= 60 * budget_minutes,
        "evaluations": len(curve),
        "best_dev_score_during_training": max(scores) if scores else None,
        f"dev_{metric}": dev[metric],
        f"test_{metric}": test[metric],
        "dev": _scores_only(dev),
        "test": _scores_only(test),
        "curve": curve,
        **started,
    }


def _scores_only(metrics: Dict[str, Any]) -> Dict[str, Any]:
    keep = (
        "data",
        "conll_output",
        "tokens",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "per_type",
        "spacy_scorer_agrees",
        "words_per_second",
    )
    return {key: metrics[key] for key in keep if key in metrics}


def run(args: argparse.Namespace, overrides: Sequence[str]) -> Dict[str, Any]:
    """Train, evaluate, and write the summary; return it."""
    started = provenance()
    output_dir: Path = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / "log.jsonl"
    config_path = output_dir / "config.budget.cfg"
    budget_config(args.config, log_path, args.budget_minutes).to_disk(config_path)
    command = train_command(
        config_path,
        output_dir,
        train=args.train,
        dev=args.dev,
        vectors=args.vectors,
        seed=args.seed,
        gpu_id=args.gpu_id,
        overrides=overrides,
        train_var=args.train_var,
        dev_var=args.dev_var,
    )
    if args.vectors_attr:
        if args.vectors is None:
            raise ValueError("--vectors-attr needs --vectors")
        set_vectors_attr(args.vectors, args.vectors_attr)
    print("Running:", " ".join(command), flush=True)
    result = subprocess.run(command)
    if result.returncode != 0:
        raise RuntimeError(f"spacy train exited with status {result.returncode}")
    if args.vectors_attr:
        for model in ("model-best", "model-last"):
            if (output_dir / model).exists():
                set_vectors_attr(output_dir / model, args.vectors_attr)

    def score(model: str, split: str, data: Path) -> Dict[str, Any]:
        metrics = evaluate(
            output_dir / model,
            data,
            output_dir / "eval" / f"{split}.{model}.conll.txt",
            kind=args.kind,
            spans_key=args.spans_key,
            gpu_id=args.gpu_id,
            corpus=args.corpus,
        )
        if not metrics["spacy_scorer_agrees"]:
            raise ValueError(
                f"{model} on {split}: spaCy's Scorer disagrees with conlleval: "
                + "; ".join(metrics["disagreements"])
            )
        write_json(output_dir / "eval" / f"{split}.{model}.json", metrics)
        return metrics

    # The budget ends between two dev evaluations: the steps after the last one are
    # only in model-last. Both are scored on dev; the better one is scored on test.
    candidates = {"model-best": score("model-best", "dev", args.dev)}
    if (output_dir / "model-last").exists():
        candidates["model-last"] = score("model-last", "dev", args.dev)
    metric = "accuracy" if args.kind == "tags" else "f1"
    selected = max(candidates, key=lambda name: (candidates[name][metric], name == "model-best"))
    metrics = {"dev": candidates[selected], "test": score(selected, "test", args.test)}
    summary = summarize(
        name=args.name or args.config.stem,
        config_path=args.config,
        budget_minutes=args.budget_minutes,
        seed=args.seed,
        overrides=overrides,
        records=read_log(log_path),
        dev=metrics["dev"],
        test=metrics["test"],
        kind=args.kind,
        started=started,
    )
    summary["selected_model"] = selected
    summary["dev_by_model"] = {name: m[metric] for name, m in candidates.items()}
    write_json(args.summary or output_dir / "summary.json", summary)
    return summary


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--vectors", type=Path, default=None)
    parser.add_argument(
        "--budget-minutes",
        type=float,
        required=True,
        help="wall-clock training budget; 0: no budget",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", default="ner", choices=("ner", "spans", "tags"))
    parser.add_argument("--spans-key", default="chunks")
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument(
        "--summary", type=Path, default=None, help="summary JSON (default OUTPUT_DIR/summary.json)"
    )
    parser.add_argument("--name", default=None, help="run name (default: the config's stem)")
    parser.add_argument("--train-var", default="train", help="the [paths] variable --train sets")
    parser.add_argument("--dev-var", default="dev", help="the [paths] variable --dev sets")
    parser.add_argument(
        "--vectors-attr",
        default=None,
        help="restore this key attribute (e.g. LOWER) of spaCy's vectors, "
        "which spaCy 3.8.18 drops when it saves them",
    )
    parser.add_argument(
        "--corpus",
        default=None,
        help="tag the evaluation docs with this corpus name (cross-lingual pipelines)",
    )
    args, overrides = parser.parse_known_args(argv)
    if args.budget_minutes < 0:
        parser.error("--budget-minutes must be >= 0")
    bad = [o for o in overrides if o.startswith("-") and not o.startswith("--")]
    if bad or (overrides and not overrides[0].startswith("--")):
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")
    return args, overrides


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, overrides = parse_args(argv)
    try:
        summary = run(args, overrides)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    metric = summary["metric"]
    print(
        f"{summary['name']} seed {summary['seed']}: {summary['steps']} steps in "
        f"{summary['train_seconds'] / 60:.1f} min; dev {metric} {summary[f'dev_{metric}']:.2f}, "
        f"test {metric} {summary[f'test_{metric}']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

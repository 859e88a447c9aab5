"""Labeling speed when the cores are shared: idle, beside CPU-bound processes, and with
nlp.pipe(n_process=2), for torch on 2 threads and on 1.

    python benchmarks/scripts/speed_shared.py CONFIG TRAIN.spacy TEXT.spacy [--vectors DIR] \\
        [--docs 3000] [--batch-size 256] [--busy 1] [--output shared.json] \
        [--section.key value ...]

The pipeline is CONFIG initialized on TRAIN, untrained (speed does not depend on the
weights), labeling the texts of TEXT's first --docs docs with nlp.pipe (tokenization
included) after a warm-up batch, in each of these conditions, one after the other:

* idle, torch on 2 threads and on 1;
* beside --busy CPU-bound processes (each a pure Python loop on one core, started before
  and stopped after the timing), torch on 2 threads and on 1;
* nlp.pipe(n_process=2), idle and beside the busy processes (each worker on one thread,
  spacy_lmcrf.threads).

Run it on an otherwise idle machine: the script makes the load itself. Each figure is the
median of --repeats timings. Other `--section.key value` options are config overrides.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from spacy.cli._util import parse_config_overrides
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from common import provenance, write_json

BUSY_LOOP = "while True: pass"


def words_per_second(nlp, texts: List[str], batch_size: int, n_process: int, repeats: int) -> float:
    list(nlp.pipe(texts[:batch_size], batch_size=batch_size))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n_words = sum(
            len(doc) for doc in nlp.pipe(texts, batch_size=batch_size, n_process=n_process)
        )
        rates.append(n_words / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("train", type=Path)
    parser.add_argument("text", type=Path)
    parser.add_argument("--vectors", type=Path, default=None)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes beside")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args, extra = parser.parse_known_args()

    overrides = {
        **parse_config_overrides(extra),
        "paths.train": str(args.train),
        "paths.dev": str(args.train),
        "paths.vectors": str(args.vectors) if args.vectors else None,
    }
    nlp = init_nlp(load_config(args.config, overrides=overrides, interpolate=False))
    docs = DocBin().from_disk(args.text).get_docs(nlp.vocab)
    texts = [doc.text for _, doc in zip(range(args.docs), docs)]
    rows: List[Dict[str, Any]] = []
    for load in ("idle", "busy"):
        busy: List[subprocess.Popen] = []
        if load == "busy":
            busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)]
            time.sleep(1.0)
        try:
            for threads, n_process in ((2, 1), (1, 1), (1, 2)):
                torch.set_num_threads(threads)
                rate = words_per_second(nlp, texts, args.batch_size, n_process, args.repeats)
                row = {
                    "load": load,
                    "threads": threads,
                    "n_process": n_process,
                    "words_per_s": rate,
                }
                print(row, flush=True)
                rows.append(row)
        finally:
            for process in busy:
                process.kill()
                process.wait()
    idle: Optional[float] = rows[0]["words_per_s"]
    for row in rows:
        row["vs_idle_2_threads"] = row["words_per_s"] / idle if idle else None
    result = {**provenance(), "busy_processes": args.busy, "docs": len(texts), "rows": rows}
    print(result)
    if args.output:
        write_json(args.output, result)


if __name__ == "__main__":
    main()

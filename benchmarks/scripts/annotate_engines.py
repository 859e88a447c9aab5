"""`spacy lmcrf annotate`'s engines side by side: this process (nlp.pipe), and Ray Data with
1 and 2 actors, on the same JSONL shards; start-up (to the first result) and steady rate.

    python benchmarks/scripts/annotate_engines.py MODEL TEXT.spacy OUT.json \\
        [--docs 2000] [--shards 4] [--batch-size 64] [--engines local,ray1,ray2]

The texts of TEXT's first --docs docs are written as --shards JSONL shards to a temporary
directory and annotated by each engine in turn with torch on one thread per process or
actor (Ray on a local cluster of 2 CPUs, started once for both Ray runs; its start-up is
in neither run). Each run is timed from the call to its last result: "total" counts the
model loading (and the actors' start), "steady" the rate from the first result to the
last. Run it on an otherwise idle machine.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import spacy
import torch
from spacy.tokens import DocBin

from common import provenance, write_json

from spacy_lmcrf.annotate import annotate_rows, annotate_shards_on_ray, find_shards, read_rows


def write_shards(texts: List[str], directory: Path, n_shards: int) -> List[Path]:
    """The texts as n_shards JSONL files of {"text"}, in order."""
    per_shard = -(-len(texts) // n_shards)
    paths = []
    for i in range(n_shards):
        path = directory / f"part-{i}.jsonl"
        chunk = texts[i * per_shard : (i + 1) * per_shard]
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in chunk), encoding="utf8")
        paths.append(path)
    return paths


def measure(run: Callable[[], Iterator[Any]]) -> Dict[str, float]:
    """Docs, tokens, total seconds, seconds to the first result and the steady rates."""
    start = time.perf_counter()
    first = None
    n_docs = n_tokens = first_tokens = 0
    for _record, _doc, tokens in run():
        if first is None:
            first, first_tokens = time.perf_counter(), tokens
        n_docs += 1
        n_tokens += tokens
    end = time.perf_counter()
    assert first is not None, "no results"
    steady = max(end - first, 1e-9)
    return {
        "docs": n_docs,
        "tokens": n_tokens,
        "seconds": end - start,
        "docs_per_second": n_docs / (end - start),
        "tokens_per_second": n_tokens / (end - start),
        "seconds_to_first_result": first - start,
        "steady_docs_per_second": (n_docs - 1) / steady,
        "steady_tokens_per_second": (n_tokens - first_tokens) / steady,
        "load_average": os.getloadavg()[0],
    }


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("text", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--engines", default="local,ray1,ray2")
    args = parser.parse_args(argv)
    engines = args.engines.split(",")
    torch.set_num_threads(1)
    docs = DocBin().from_disk(args.text).get_docs(spacy.blank("en").vocab)
    texts = [doc.text for _, doc in zip(range(args.docs), docs)]
    runs: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        shards = find_shards([str(p) for p in write_shards(texts, Path(tmp), args.shards)])
        if "local" in engines:
            runs["local"] = measure(
                lambda: annotate_rows(
                    spacy.load(args.model), read_rows(shards), batch_size=args.batch_size
                )
            )
            print("local", runs["local"], flush=True)
        ray_engines = [e for e in engines if e.startswith("ray")]
        if ray_engines:
            import ray

            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
            runs["ray_start_seconds"] = time.perf_counter() - started
            for engine in ray_engines:
                actors = int(engine[3:])
                runs[engine] = measure(
                    lambda n=actors: annotate_shards_on_ray(
                        args.model, shards, actors=n, batch_size=args.batch_size
                    )
                )
                print(engine, runs[engine], flush=True)
            ray.shutdown()
    write_json(
        args.output,
        {
            "provenance": provenance(),
            "docs": len(texts),
            "shards": args.shards,
            "batch_size": args.batch_size,
            "model": args.model,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main(sys.argv[1:])

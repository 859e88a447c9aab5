"""Training and inference speed of a spacy-lmcrf config, in words per second.

    python benchmarks/scripts/speed.py configs/lmcrf_ner.cfg corpus/conll03.train.spacy \
        corpus/conll03.testa.spacy --vectors corpus/glove50

Training: the config's own optimizer and batcher over the training examples shuffled with
--shuffle-seed (as spaCy shuffles an epoch), timed over --train-batches batches after --warmup
batches. Inference: nlp.pipe over the texts of the eval corpus (a fresh Doc per text, so
tokenization is included), batch size --batch-size, after a warm-up pass. Each figure is the
median of --repeats timings (training continues on the next batches).
"""

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import time
from itertools import islice
from pathlib import Path

import spacy
import torch
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names


def git_commit() -> str:
    root = Path(__file__).resolve().parents[2]  # benchmarks/scripts/speed.py -> the repo
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine() -> str:
    if torch.cuda.is_available() and spacy.prefer_gpu():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"CPU, {torch.get_num_threads()} threads ({cpu}, {os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("train")
    parser.add_argument("eval")
    parser.add_argument("--vectors", default=None)
    parser.add_argument("--train-batches", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--infer-docs", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--shuffle-seed", type=int, default=0, help="-1: file order")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    overrides = {"paths.train": args.train, "paths.dev": args.eval, "paths.vectors": args.vectors}
    config = load_config(args.config, overrides=overrides, interpolate=False)
    nlp = init_nlp(config)
    optimizer, batcher = resolve_dot_names(nlp.config, ["training.optimizer", "training.batcher"])
    train_docs = list(DocBin().from_disk(args.train).get_docs(nlp.vocab))
    if args.shuffle_seed >= 0:
        random.Random(args.shuffle_seed).shuffle(train_docs)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in train_docs]
    batches = iter(batcher(examples))
    for batch in islice(batches, args.warmup):
        nlp.update(batch, sgd=optimizer)
    train_rates = []
    for _ in range(args.repeats):
        n_words, start = 0, time.perf_counter()
        for batch in islice(batches, args.train_batches):
            nlp.update(batch, sgd=optimizer)
            n_words += sum(len(eg.predicted) for eg in batch)
        train_rates.append(n_words / (time.perf_counter() - start))
    train_wps = statistics.median(train_rates)

    eval_docs = list(DocBin().from_disk(args.eval).get_docs(nlp.vocab))[: args.infer_docs]
    texts = [doc.text for doc in eval_docs]
    list(nlp.pipe(texts[: args.batch_size], batch_size=args.batch_size))
    infer_rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=args.batch_size))
        infer_rates.append(n_words / (time.perf_counter() - start))
    infer_wps = statistics.median(infer_rates)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "config": args.config,
        "train_words_per_s": round(train_wps),
        "train_batches": args.train_batches,
        "train_words_per_s_runs": [round(rate) for rate in train_rates],
        "infer_words_per_s_runs": [round(rate) for rate in infer_rates],
        "repeats": args.repeats,
        "shuffle_seed": args.shuffle_seed,
        "infer_words_per_s": round(infer_wps),
        "infer_words": n_words,
        "batch_size": args.batch_size,
        "peak_rss_mib": round(peak_rss_mib),
        "machine": machine(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Training and inference speed of a spacy-lmcrf config, in words per second.

    python benchmarks/scripts/speed.py configs/lmcrf_ner.cfg corpus/conll03.train.spacy \
        corpus/conll03.testa.spacy --vectors corpus/glove50

Training: the config's own optimizer and batch size, timed over --train-batches batches
after --warmup batches. Inference: nlp.pipe over the texts of the eval corpus (a fresh
Doc per text, so tokenization is included), batch size --batch-size, after a warm-up pass.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import time
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
    args = parser.parse_args()

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    overrides = {"paths.train": args.train, "paths.dev": args.eval, "paths.vectors": args.vectors}
    config = load_config(args.config, overrides=overrides, interpolate=False)
    nlp = init_nlp(config)
    optimizer, batcher = resolve_dot_names(nlp.config, ["training.optimizer", "training.batcher"])
    train_docs = list(DocBin().from_disk(args.train).get_docs(nlp.vocab))
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in train_docs]
    batches = list(batcher(examples))[: args.warmup + args.train_batches]
    for batch in batches[: args.warmup]:
        nlp.update(batch, sgd=optimizer)
    n_words, start = 0, time.perf_counter()
    for batch in batches[args.warmup :]:
        nlp.update(batch, sgd=optimizer)
        n_words += sum(len(eg.predicted) for eg in batch)
    train_wps = n_words / (time.perf_counter() - start)

    eval_docs = list(DocBin().from_disk(args.eval).get_docs(nlp.vocab))[: args.infer_docs]
    texts = [doc.text for doc in eval_docs]
    list(nlp.pipe(texts[: args.batch_size], batch_size=args.batch_size))
    start = time.perf_counter()
    n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=args.batch_size))
    infer_wps = n_words / (time.perf_counter() - start)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "config": args.config,
        "train_words_per_s": round(train_wps),
        "train_batches": args.train_batches,
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

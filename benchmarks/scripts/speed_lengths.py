"""Inference and training speed, and peak memory, for documents of 10, 1,000 and 100,000 tokens.

    python benchmarks/scripts/speed_lengths.py CONFIG TRAIN.spacy TEXT.spacy [--vectors DIR] \\
        [--lengths 10 1000 100000] [--words 100000] [--train-words 20000] \\
        [--batch-words 10000] [--train-batch-words 1000] [--kind ner] [--gpu-id -1] \\
        [--threads N] [--name NAME] [--output speed.json] [--markdown speed.md] \
        [--section.key value ...]

The pipeline is CONFIG initialized on TRAIN (labels, vocabularies, vectors), untrained:
speed does not depend on the weights. Documents are cut from the running token stream of
TEXT (e.g. CoNLL-2003 test, real text), its sentences joined, and built from words and
spaces only, without sentence boundaries, so models that split by sentence fall back
to their windowing. For each length:

* inference: nlp.pipe over about --words tokens (at least one doc), batches of
  max(1, batch_words // length) docs, after one warm-up batch: words/s and the peak
  resident memory during it (Linux VmHWM, reset just before; the CPU figure includes
  the process' baseline) and on GPU torch's peak allocation (spaCy's GPU allocator
  is set to PyTorch, so CuPy allocations count too);
* training: nlp.update with the config's optimizer over about --train-words tokens (at
  least one doc) with the gold annotation of TEXT (--kind: ner = entities, spans =
  doc.spans[--spans-key], tags = token.tag_), batches of max(1, train_batch_words //
  length) docs, after one warm-up update: words/s and peak memory.

Each (device, length) runs in a fresh process, so peaks do not carry over. --threads sets
torch's CPU threads there (default: torch's own choice); run on an otherwise idle machine:
with every core busy elsewhere, OpenMP threads wait on each other and times blow up. CPU always;
the GPU too when --gpu-id >= 0. "per_token_ratio" divides each length's seconds per
token by that of --reference-length (1,000) docs; "linear" says whether the longer
documents cost at most --linear-tolerance (1.5) times as much per token, i.e. whether
cost grows linearly with length. Other `--section.key value` options are config
overrides.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from common import provenance, write_json

MIB = 1024 * 1024
PHASES = ("infer", "train")


# -- memory --------------------------------------------------------------------


def _status_kib(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak resident memory (and GPU allocation) over a with-block.

    Resets the kernel's high-water mark (/proc/self/clear_refs) where allowed;
    elsewhere polls the current RSS every 5 ms.
    """

    def __init__(self, gpu: bool) -> None:
        self.gpu = gpu
        self.rss_mib: Optional[float] = None
        self.gpu_mib: Optional[float] = None
        self._polled = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "PeakMemory":
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._hwm = True
        except OSError:
            self._hwm = False
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        if self.gpu:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._polled = max(self._polled, _status_kib("VmRSS") or 0)
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        if self._hwm:
            kib = _status_kib("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
            kib = self._polled
        self.rss_mib = None if not kib else kib / 1024
        if self.gpu:
            import torch

            torch.cuda.synchronize()
            self.gpu_mib = torch.cuda.max_memory_allocated() / MIB


# -- data ----------------------------------------------------------------------


def token_stream(docs, kind: str, spans_key: str) -> Tuple[List[str], List[str]]:
    """Words and per-token gold tags (IOB2 for ner/spans, POS for tags) of all docs, in order."""
    from spacy_lmcrf.tags import spans_to_tags

    words: List[str] = []
    tags: List[str] = []
    for doc in docs:
        words.extend(token.text for token in doc)
        if kind == "tags":
            tags.extend(token.tag_ for token in doc)
            continue
        group = doc.ents if kind == "ner" else doc.spans.get(spans_key, [])
        spans = [(span.start, span.end, span.label_) for span in group]
        tags.extend(spans_to_tags(len(doc), spans, "IOB2"))
    if not words:
        raise ValueError("the text corpus has no tokens")
    return words, tags


def slices(n_tokens: int, length: int, n_docs: int, offset: int = 0) -> Iterator[Tuple[int, int]]:
    """n_docs consecutive (start, end) windows of `length` over a stream that wraps around."""
    start = offset % n_tokens
    for _ in range(n_docs):
        yield start, start + length
        start = (start + length) % n_tokens


def make_doc(
    vocab,
    words: List[str],
    tags: Optional[List[str]] = None,
    kind: str = "ner",
    spans_key: str = "chunks",
):
    """A doc of the words (no sentence boundaries), with gold annotation when tags are given."""
    from spacy.tokens import Doc, Span

    from spacy_lmcrf.tags import tags_to_spans

    doc = Doc(vocab, words=words)
    if tags is None:
        return doc
    if kind == "tags":
        for token, tag in zip(doc, tags):
            token.tag_ = tag
        return doc
    spans = [Span(doc, s, e, label=label) for s, e, label in tags_to_spans(tags, "IOB2")]
    if kind == "ner":
        doc.set_ents(spans, default="outside")
    else:
        doc.spans[spans_key] = spans
    return doc


def window(
    stream: Tuple[List[str], List[str]], start: int, end: int
) -> Tuple[List[str], List[str]]:
    """Tokens start..end of the wrapping stream."""
    words, tags = stream
    n = len(words)
    idx = [i % n for i in range(start, end)]
    return [words[i] for i in idx], [tags[i] for i in idx]


# -- one measurement (runs in its own process) -----------------------------------


def build_nlp(config_path: Path, train: Path, vectors: Optional[Path], overrides: Dict[str, Any]):
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config

    all_overrides = {"paths.train": str(train), "paths.dev": str(train), **overrides}
    if vectors is not None:
        all_overrides["paths.vectors"] = str(vectors)
    config = load_config(config_path, overrides=all_overrides, interpolate=False)
    return init_nlp(config)


def measure(
    config_path: Path,
    train: Path,
    text: Path,
    length: int,
    phase: str,
    *,
    vectors: Optional[Path] = None,
    words: int = 100_000,
    train_words: int = 20_000,
    batch_words: int = 10_000,
    train_batch_words: int = 1_000,
    kind: str = "ner",
    spans_key: str = "chunks",
    gpu_id: int = -1,
    threads: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Speed and peak memory of one phase ("infer" or "train") for docs of one length."""
    import spacy
    import torch
    from spacy.tokens import DocBin
    from thinc.api import set_gpu_allocator

    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
        set_gpu_allocator("pytorch")
    nlp = build_nlp(config_path, train, vectors, overrides or {})
    stream = token_stream(DocBin().from_disk(text).get_docs(nlp.vocab), kind, spans_key)
    if phase == "infer":
        n_docs, seconds, peak = _time_inference(nlp, stream, length, words, batch_words, gpu_id)
        per_batch = max(1, batch_words // length)
    else:
        n_docs, seconds, peak = _time_training(
            nlp, stream, length, train_words, train_batch_words, kind, spans_key, gpu_id
        )
        per_batch = max(1, train_batch_words // length)
    return {
        "device": torch.cuda.get_device_name(gpu_id) if gpu_id >= 0 else "cpu",
        "torch_threads": torch.get_num_threads(),
        f"{phase}_docs": n_docs,
        f"{phase}_batch_docs": per_batch,
        f"{phase}_words": n_docs * length,
        f"{phase}_seconds": seconds,
        f"{phase}_words_per_s": n_docs * length / seconds,
        f"{phase}_peak_rss_mib": peak.rss_mib,
        f"{phase}_peak_gpu_mib": peak.gpu_mib,
    }


def _time_inference(nlp, stream, length: int, words: int, batch_words: int, gpu_id: int):
    n_stream = len(stream[0])
    n_docs = max(1, words // length)
    per_batch = max(1, batch_words // length)
    docs = [
        make_doc(nlp.vocab, window(stream, s, e)[0]) for s, e in slices(n_stream, length, n_docs)
    ]
    warmup = [
        make_doc(nlp.vocab, window(stream, s, e)[0])
        for s, e in slices(n_stream, min(length, 1000), per_batch, offset=n_stream // 2)
    ]
    list(nlp.pipe(warmup, batch_size=per_batch))
    with PeakMemory(gpu_id >= 0) as peak:
        start = time.perf_counter()
        for _ in nlp.pipe(docs, batch_size=per_batch):
            pass
        seconds = time.perf_counter() - start
    return n_docs, seconds, peak


def _time_training(
    nlp,
    stream,
    length: int,
    train_words: int,
    train_batch_words: int,
    kind: str,
    spans_key: str,
    gpu_id: int,
):
    from spacy.training import Example
    from spacy.util import resolve_dot_names

    def example(start: int, end: int) -> Example:
        w, t = window(stream, start, end)
        return Example(make_doc(nlp.vocab, w), make_doc(nlp.vocab, w, t, kind, spans_key))

    n_stream = len(stream[0])
    optimizer = resolve_dot_names(nlp.config.interpolate(), ["training.optimizer"])[0]
    n_docs = max(1, train_words // length)
    per_batch = max(1, train_batch_words // length)
    examples = [example(s, e) for s, e in slices(n_stream, length, n_docs, offset=n_stream // 3)]
    nlp.update([example(0, min(length, 1000))], sgd=optimizer)
    with PeakMemory(gpu_id >= 0) as peak:
        start = time.perf_counter()
        for i in range(0, len(examples), per_batch):
            nlp.update(examples[i : i + per_batch], sgd=optimizer)
        if gpu_id >= 0:
            import torch

            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return n_docs, seconds, peak


# -- the table -------------------------------------------------------------------


def add_linearity(
    rows: List[Dict[str, Any]], reference_length: int, tolerance: float
) -> Dict[str, Any]:
    """Per-token cost of each length relative to the reference length, per device and phase."""
    verdict: Dict[str, Any] = {}
    for device in sorted({r["device"] for r in rows}):
        device_rows = {r["length"]: r for r in rows if r["device"] == device}
        ref = device_rows.get(reference_length)
        for phase in ("infer", "train"):
            if ref is None:
                verdict[f"{device}_{phase}"] = None
                continue
            ratios = {}
            for length, r in device_rows.items():
                if f"{phase}_words_per_s" not in r or f"{phase}_words_per_s" not in ref:
                    continue
                ratio = ref[f"{phase}_words_per_s"] / r[f"{phase}_words_per_s"]
                r[f"{phase}_per_token_ratio"] = ratio
                ratios[length] = ratio
            longer = [length for length in device_rows if length > reference_length]
            if not longer or any(length not in ratios for length in longer):
                verdict[f"{device}_{phase}"] = None
            else:
                verdict[f"{device}_{phase}"] = all(ratios[n] <= tolerance for n in longer)
    return verdict


def markdown(name: str, rows: Sequence[Dict[str, Any]]) -> str:
    """The table: one row per device and length."""

    def fmt(value: Any, digits: int = 0) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    def speed(r: Dict[str, Any], phase: str) -> str:
        if f"{phase}_error" in r:
            return "failed"
        return fmt(r.get(f"{phase}_words_per_s"))

    def memory(r: Dict[str, Any], phase: str) -> str:
        return f"{fmt(r.get(f'{phase}_peak_rss_mib'))} / {fmt(r.get(f'{phase}_peak_gpu_mib'))}"

    lines = [
        "| system | device | doc tokens | infer words/s | infer peak MiB (RSS / GPU) | "
        "train words/s | train peak MiB (RSS / GPU) | "
        "per-token cost vs reference (infer / train) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {name} | {r['device']} | {r['length']:,} | "
            f"{speed(r, 'infer')} | {memory(r, 'infer')} | "
            f"{speed(r, 'train')} | {memory(r, 'train')} | "
            f"{fmt(r.get('infer_per_token_ratio'), 2)} / {fmt(r.get('train_per_token_ratio'), 2)} |"
        )
    return "\n".join(lines) + "\n"


def run_isolated(
    args: argparse.Namespace, overrides: Sequence[str], length: int, phase: str, gpu_id: int
) -> Dict[str, Any]:
    """measure() in a fresh Python process; a failure (e.g. out of memory) becomes
    "{phase}_error"."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        str(args.config),
        str(args.train),
        str(args.text),
        "--single",
        str(length),
        "--phase",
        phase,
        "--gpu-id",
        str(gpu_id),
        "--words",
        str(args.words),
        "--train-words",
        str(args.train_words),
        "--batch-words",
        str(args.batch_words),
        "--train-batch-words",
        str(args.train_batch_words),
        "--kind",
        args.kind,
        "--spans-key",
        args.spans_key,
    ]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.vectors is not None:
        command += ["--vectors", str(args.vectors)]
    result = subprocess.run(command + list(overrides), capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        reason = "killed (out of memory?)" if result.returncode in (-9, 137) else " | ".join(tail)
        return {f"{phase}_error": f"exit status {result.returncode}: {reason}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("train", type=Path, help=".spacy corpus the pipeline is initialized on")
    parser.add_argument("text", type=Path, help=".spacy corpus the documents are cut from")
    parser.add_argument("--vectors", type=Path, default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 1000, 100_000])
    parser.add_argument("--words", type=int, default=100_000)
    parser.add_argument("--train-words", type=int, default=20_000)
    parser.add_argument("--batch-words", type=int, default=10_000)
    parser.add_argument("--train-batch-words", type=int, default=1_000)
    parser.add_argument("--kind", default="ner", choices=("ner", "spans", "tags"))
    parser.add_argument("--spans-key", default="chunks")
    parser.add_argument("--gpu-id", type=int, default=-1, help="also measure on this GPU (>= 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--reference-length", type=int, default=1000)
    parser.add_argument("--linear-tolerance", type=float, default=1.5)
    parser.add_argument("--name", default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="infer", choices=PHASES, help=argparse.SUPPRESS)
    return parser.parse_known_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from spacy.cli._util import parse_config_overrides

    args, overrides = parse_args(argv)
    config_overrides = parse_config_overrides(list(overrides))
    if args.single is not None:
        row = measure(
            args.config,
            args.train,
            args.text,
            args.single,
            args.phase,
            vectors=args.vectors,
            words=args.words,
            train_words=args.train_words,
            batch_words=args.batch_words,
            train_batch_words=args.train_batch_words,
            kind=args.kind,
            spans_key=args.spans_key,
            gpu_id=args.gpu_id,
            threads=args.threads,
            overrides=config_overrides,
        )
        print(json.dumps(row))
        return 0
    name = args.name or args.config.stem
    rows = []
    for gpu_id in [-1] + ([args.gpu_id] if args.gpu_id >= 0 else []):
        for length in args.lengths:
            row: Dict[str, Any] = {
                "length": length,
                "device": "cpu" if gpu_id < 0 else f"gpu {gpu_id}",
            }
            for phase in PHASES:
                row.update(run_isolated(args, overrides, length, phase, gpu_id))
            print(json.dumps(row), flush=True)
            rows.append(row)
    linear = add_linearity(rows, args.reference_length, args.linear_tolerance)
    table = markdown(name, rows)
    print(table, end="")
    print("cost grows linearly with length:", json.dumps(linear))
    result = {
        "name": name,
        "config": str(args.config),
        "overrides": list(overrides),
        "kind": args.kind,
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "linear": linear,
        "reference_length": args.reference_length,
        "linear_tolerance": args.linear_tolerance,
        **provenance(),
    }
    if args.output:
        write_json(args.output, result)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table, encoding="utf8")
    failed = [
        f"{r['device']} {r['length']}: {r[k]}" for r in rows for k in r if k.endswith("_error")
    ]
    if failed:
        print("Error: some measurements failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

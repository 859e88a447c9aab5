"""Time and peak memory of a batch with one very long token (no spaces: base64, minified
JSON, a CJK run), beside the same batch without it and that doc alone.

    OMP_NUM_THREADS=1 python benchmarks/scripts/long_tokens.py [--model PIPELINE_DIR] \\
        [--docs 64] [--doc-tokens 25] [--long-chars 30000] [--alphabet base64|cjk] \\
        [--repeats 3] [--threads 1] [--text assets/conll03_sample/dev.iob] \\
        [--output long_tokens.json] [--markdown long_tokens.md] [--model.key value ...]

The pipeline is --model (a saved pipeline), or else the default lm_crf_ner
(spacy.blank("en") + nlp.add_pipe("lm_crf_ner"): LM-LSTM-CRF with the paper's sizes;
`--model.key value` options override its component config) initialized on the CoNLL-2003
sample in assets/ and left untrained: the cost does not depend on the weights. Docs of
--doc-tokens tokens are cut from the words of --text (a CoNLL file), without sentence
boundaries; the long token (--long-chars characters of --alphabet) goes in the middle of
the first doc. Cases, each in a fresh process so that peaks do not carry over:

* batch: --docs docs;
* batch + long token: the same docs, the first with the long token;
* long-token doc alone.

Each case runs nlp.pipe over its docs as one batch, after a warm-up batch of two ordinary
docs. Seconds: the fastest of --repeats runs. Peak RSS: the process' ru_maxrss at the
end (the loaded pipeline and torch included); "over warm-up": how much the timed runs
raised it. The ratios divide by the batch case: issue 21 asks that the batch with the
long token stay within 2x of the batch without it.
"""

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from common import ROOT, provenance, write_json

SAMPLE = ROOT / "assets" / "conll03_sample"
CASES = ("batch", "batch + long token", "long-token doc alone")
ALPHABETS = {
    "base64": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "cjk": "".join(chr(c) for c in range(0x4E00, 0x4E00 + 2000)),
}


# -- data ----------------------------------------------------------------------


def corpus_words(path: Path) -> List[str]:
    """The words of a CoNLL file (first column), sentences and documents run together."""
    from spacy.vocab import Vocab

    from spacy_lmcrf.conll import conll_to_docs

    words = [t.text for doc in conll_to_docs(Vocab(), path, task="pos") for t in doc]
    if not words:
        raise ValueError(f"{path} has no words")
    return words


def long_token(n_chars: int, alphabet: str, seed: int = 0) -> str:
    """n_chars characters drawn from alphabet (base64 or CJK: no spaces, so one token)."""
    rng = random.Random(seed)
    return "".join(rng.choice(ALPHABETS[alphabet]) for _ in range(n_chars))


def case_words(
    case: str, words: List[str], n_docs: int, doc_tokens: int, token: str
) -> List[List[str]]:
    """The words of each doc of a case: n_docs windows of doc_tokens consecutive words
    (wrapping around), the first with token in its middle where the case has it."""
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    docs = [
        [words[(d * doc_tokens + i) % len(words)] for i in range(doc_tokens)] for d in range(n_docs)
    ]
    if case == "batch":
        return docs
    middle = doc_tokens // 2
    first = docs[0][:middle] + [token] + docs[0][middle:]
    return [first] + docs[1:] if case == "batch + long token" else [first]


# -- the default pipeline --------------------------------------------------------


def nested(overrides: Dict[str, Any]) -> Dict[str, Any]:
    """{"model.tok2vec.width": 16} -> {"model": {"tok2vec": {"width": 16}}}."""
    config: Dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return config


def default_pipeline(config: Dict[str, Any], train: Path = SAMPLE / "train.iob"):
    """spacy.blank("en") with lm_crf_ner (config: overrides of the component's config),
    initialized on the NER annotation of the CoNLL file train."""
    import spacy
    from spacy.tokens import Doc
    from spacy.training import Example

    from spacy_lmcrf.conll import conll_to_docs

    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config=config)
    gold = list(conll_to_docs(nlp.vocab, train, task="ner", scheme="IOB1"))
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in doc]), doc) for doc in gold]
    nlp.initialize(lambda: examples)
    return nlp


# -- one case (runs in its own process) -------------------------------------------


def max_rss_mib() -> float:
    """The process' peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    model: Path,
    case: str,
    *,
    text: Path,
    n_docs: int,
    doc_tokens: int,
    long_chars: int,
    alphabet: str,
    repeats: int,
    threads: Optional[int],
) -> Dict[str, Any]:
    """Seconds (fastest of repeats) and peak memory of nlp.pipe over one case's docs."""
    import spacy
    import torch
    from spacy.tokens import Doc

    if threads is not None:
        torch.set_num_threads(threads)
    nlp = spacy.load(model)
    words = corpus_words(text)
    docs_words = case_words(case, words, n_docs, doc_tokens, long_token(long_chars, alphabet))
    list(nlp.pipe([Doc(nlp.vocab, words=w) for w in case_words("batch", words, 2, doc_tokens, "")]))
    rss_before = max_rss_mib()
    seconds = []
    for _ in range(repeats):
        docs = [Doc(nlp.vocab, words=w) for w in docs_words]
        start = time.perf_counter()
        for _doc in nlp.pipe(docs, batch_size=len(docs)):
            pass
        seconds.append(time.perf_counter() - start)
    peak = max_rss_mib()
    return {
        "case": case,
        "docs": len(docs_words),
        "tokens": sum(len(w) for w in docs_words),
        "longest_token_chars": max(len(t) for w in docs_words for t in w),
        "seconds": min(seconds),
        "peak_rss_mib": peak,
        "peak_over_warmup_mib": peak - rss_before,
        "torch_threads": torch.get_num_threads(),
    }


def run_isolated(args: argparse.Namespace, model: Path, case: str) -> Dict[str, Any]:
    """measure() in a fresh Python process; a failure (e.g. out of memory) becomes "error"."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--single",
        case,
        "--model",
        str(model),
        "--text",
        str(args.text),
        "--docs",
        str(args.docs),
        "--doc-tokens",
        str(args.doc_tokens),
        "--long-chars",
        str(args.long_chars),
        "--alphabet",
        args.alphabet,
        "--repeats",
        str(args.repeats),
    ]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        reason = "killed (out of memory?)" if result.returncode in (-9, 137) else " | ".join(tail)
        return {"case": case, "error": f"exit status {result.returncode}: {reason}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- the table -------------------------------------------------------------------


def add_ratios(rows: List[Dict[str, Any]]) -> None:
    """Each row's seconds and peak RSS divided by those of the batch case."""
    base = next((r for r in rows if r["case"] == "batch" and "error" not in r), None)
    for row in rows:
        if base is None or "error" in row:
            continue
        row["seconds_ratio"] = row["seconds"] / base["seconds"]
        row["peak_rss_ratio"] = row["peak_rss_mib"] / base["peak_rss_mib"]


def markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """One line per case."""

    def fmt(value: Any, digits: int = 0) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    lines = [
        "| case | docs | tokens | longest token (chars) | seconds | peak RSS MiB | "
        "over warm-up MiB | vs batch (time / peak RSS) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['case']} | {r['docs']} | {r['tokens']:,} | {r['longest_token_chars']:,} | "
            f"{fmt(r['seconds'], 3)} | {fmt(r['peak_rss_mib'])} | "
            f"{fmt(r['peak_over_warmup_mib'])} | "
            f"{fmt(r.get('seconds_ratio'), 2)}x / {fmt(r.get('peak_rss_ratio'), 2)}x |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--model", type=Path, default=None, help="a saved pipeline")
    parser.add_argument(
        "--text", type=Path, default=SAMPLE / "dev.iob", help="CoNLL file of the docs' words"
    )
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--doc-tokens", type=int, default=25)
    parser.add_argument("--long-chars", type=int, default=30_000)
    parser.add_argument("--alphabet", default="base64", choices=sorted(ALPHABETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--single", default=None, choices=CASES, help=argparse.SUPPRESS)
    return parser.parse_known_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from spacy.cli._util import parse_config_overrides

    args, overrides = parse_args(argv)
    if args.single is not None:
        row = measure(
            args.model,
            args.single,
            text=args.text,
            n_docs=args.docs,
            doc_tokens=args.doc_tokens,
            long_chars=args.long_chars,
            alphabet=args.alphabet,
            repeats=args.repeats,
            threads=args.threads,
        )
        print(json.dumps(row))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "lm_crf_ner"
            default_pipeline(nested(parse_config_overrides(list(overrides)))).to_disk(model)
        elif overrides:
            raise ValueError(
                f"config overrides apply to the default pipeline only, not --model: {overrides}"
            )
        rows = [run_isolated(args, model, case) for case in CASES]
    add_ratios(rows)
    table = markdown(rows)
    print(table)
    result = {
        **provenance(),
        "model": str(args.model) if args.model else "default lm_crf_ner, untrained",
        "overrides": list(overrides),
        "long_chars": args.long_chars,
        "alphabet": args.alphabet,
        "rows": rows,
    }
    if args.output is not None:
        write_json(args.output, result)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table, encoding="utf8")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Draw the position-aware self-attention of a trained pipeline for one sentence as a
heatmap PNG (Wei et al.'s Figure 6).

    python benchmarks/scripts/attention_heatmap.py MODEL "The stock opened sharply lower ." \\
        OUT.png [--component lm_crf_tagger] [--focus lower] [--title TITLE]

MODEL is a pipeline directory (e.g. training/.../model-best) whose component holds a
spacy_lmcrf.PSATok2Vec.v1. One panel per context fusion layer switched on (layer 1 over
the word and character features, layer 2 over the bi-LSTM's output): row i is how
much token i attends to each token j (rows sum to 1; the diagonal is 0 under the
self-disabled mask). --focus WORD draws only that word's row, as the paper's figure
does. The title names the model directory, so say in --title (or in the directory
name) what the model was trained on. Needs matplotlib (the `bench` extra:
pip install -e ".[bench]").
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy
import spacy

from spacy_lmcrf.attention import get_attention

LAYER_NAMES = {"input": "fusion layer 1 (features)", "output": "fusion layer 2 (bi-LSTM output)"}


def plot(
    tokens: List[str],
    matrices: Dict[str, numpy.ndarray],
    output: Path,
    *,
    title: str,
    focus: Optional[int] = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(tokens)
    rows = 1 if focus is not None else n
    width = max(4.0, 0.45 * n + 2)
    height = 1.6 + (0.45 * rows if focus is None else 0.6)
    fig, axes = plt.subplots(
        len(matrices), 1, figsize=(width, height * len(matrices)), dpi=120, squeeze=False
    )
    for ax, (place, matrix) in zip(axes[:, 0], matrices.items()):
        shown = matrix[focus : focus + 1] if focus is not None else matrix
        image = ax.imshow(
            shown, cmap="Blues", vmin=0.0, vmax=max(float(shown.max()), 1e-6), aspect="auto"
        )
        ax.set_xticks(range(n), tokens, rotation=60, ha="right")
        ax.set_yticks(range(rows), [tokens[focus]] if focus is not None else tokens)
        ax.set_title(LAYER_NAMES.get(place, place), fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a trained pipeline directory")
    parser.add_argument("text", help="the sentence (tokenized by the pipeline's tokenizer)")
    parser.add_argument("output", type=Path, help="the PNG to write")
    parser.add_argument(
        "--component", default=None, help="the component holding the PSA tok2vec (default: found)"
    )
    parser.add_argument(
        "--focus", default=None, help="draw only this word's row (its first occurrence)"
    )
    parser.add_argument("--title", default=None, help="default: 'Attention of MODEL'")
    args = parser.parse_args(argv)
    try:
        nlp = spacy.load(args.model)
        doc = nlp.make_doc(args.text)
        if len(doc) == 0:
            raise ValueError("the text has no tokens")
        tokens = [token.text for token in doc]
        focus = None
        if args.focus is not None:
            if args.focus not in tokens:
                raise ValueError(f"--focus {args.focus!r} is not a token of the text: {tokens}")
            focus = tokens.index(args.focus)
        matrices = get_attention(nlp, doc, component=args.component)
    except (OSError, ValueError, KeyError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    title = args.title or f"Attention of {args.model}"
    plot(tokens, matrices, args.output, title=title, focus=focus)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

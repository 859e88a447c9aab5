"""Look at the position-aware self-attention of a trained pipeline.

    from spacy_lmcrf.attention import get_attention
    weights = get_attention(nlp, "Peter Blackburn lives in Berlin .")
    weights["input"][i, j]   # how much token i attends to token j in fusion layer 1

benchmarks/scripts/attention_heatmap.py draws these matrices (Wei et al.'s Figure 6).
"""

from typing import Dict, Optional, Union

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model

from .ml.featurize.segments import batch_segments
from .ml.models.psa_tok2vec import fusion_layers

PSA_TOK2VEC = "psa_tok2vec"


def find_psa_tok2vec(nlp: Language, component: Optional[str] = None) -> Model:
    """The PSA tok2vec inside component's model (or the first component that holds
    one). A component listening to a shared tok2vec holds none: name the `tok2vec`
    component then."""
    names = [component] if component is not None else nlp.pipe_names
    for name in names:
        model = getattr(nlp.get_pipe(name), "model", None)
        if model is None:
            continue
        for node in model.walk():
            if node.name == PSA_TOK2VEC:
                return node
    where = (
        f"component {component!r}" if component is not None else f"the pipeline {nlp.pipe_names}"
    )
    raise ValueError(
        f"No PSA tok2vec (spacy_lmcrf.PSATok2Vec.v1) in {where}. If the component listens "
        "to a shared tok2vec, name the component that holds it (e.g. component='tok2vec')."
    )


def get_attention(
    nlp: Language, text: Union[str, Doc], component: Optional[str] = None
) -> Dict[str, numpy.ndarray]:
    """The attention weights of each context fusion layer for one text.

    nlp (Language): a trained pipeline with a spacy_lmcrf.PSATok2Vec.v1.
    text (Union[str, Doc]): the text (tokenized by nlp's tokenizer) or a Doc.
    component (Optional[str]): the component holding the PSA tok2vec; None finds it.
    RETURNS (Dict[str, numpy.ndarray]): {"input": (n, n), "output": (n, n)} for the
        layers switched on; row i holds how token i attends to every token j (its
        softmax, summing to 1 over the tokens it may attend to). Tokens in different
        sentences (or windows of max_length tokens) never attend to each other: 0 there.
    """
    doc = nlp.make_doc(text) if isinstance(text, str) else text
    tok2vec = find_psa_tok2vec(nlp, component)
    layers = fusion_layers(tok2vec)
    if not layers:
        raise ValueError(
            "This PSA tok2vec has both fusion layers switched off: "
            "there is no attention to look at."
        )
    n = len(doc)
    matrices = {place: numpy.zeros((n, n), dtype="float32") for place in layers}
    if n == 0:
        return matrices
    segments = batch_segments([doc], tok2vec.attrs["max_length"])  # the ones predict reads
    for layer in layers.values():
        layer.keep_attention = True
    try:
        tok2vec.predict([doc])
        for place, layer in layers.items():
            attention = layer.last_attention
            assert attention is not None  # kept by predict: keep_attention is on
            weights = attention.cpu().numpy()
            for s, (_, start, end) in enumerate(segments):
                matrices[place][start:end, start:end] = weights[s, : end - start, : end - start]
    finally:
        for layer in layers.values():
            layer.keep_attention = False
            layer.last_attention = None
    return matrices

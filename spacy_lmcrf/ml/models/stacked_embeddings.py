"""spacy_lmcrf.StackedEmbeddings.v1: several tok2vecs' rows side by side (Flair's stacking)."""

from typing import List, cast

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, concatenate
from thinc.types import Floats2d


@registry.architectures("spacy_lmcrf.StackedEmbeddings.v1")
def build_stacked_embeddings(
    *embeddings: Model[List[Doc], List[Floats2d]],
) -> Model[List[Doc], List[Floats2d]]:
    """Concatenate the per-token rows of several tok2vecs (Akbik et al. 2018, equation
    14: contextual string embeddings stacked with word embeddings, and optionally with
    task-trained character features). Unlike Thinc's concatenate.v1, the output width is
    set when the model is built, so a CRF head or an encoder can be sized from it.

    *embeddings (Model[List[Doc], List[Floats2d]]): the tok2vecs; each must know its
        output width (nO) when built.
    """
    if not embeddings:
        raise ValueError("StackedEmbeddings needs at least one embedding layer")
    widths = [layer.get_dim("nO") if layer.has_dim("nO") else None for layer in embeddings]
    if any(width is None for width in widths):
        missing = [layer.name for layer, width in zip(embeddings, widths) if width is None]
        raise ValueError(
            f"StackedEmbeddings: the output width (nO) of {', '.join(missing)} is not set"
        )
    if len(embeddings) == 1:
        return embeddings[0]
    model: Model[List[Doc], List[Floats2d]] = concatenate(*embeddings)
    model.set_dim("nO", sum(cast(List[int], widths)))  # none is None: checked above
    model.attrs["init_with_all_docs"] = any(
        node.attrs.get("init_with_all_docs") for layer in embeddings for node in layer.walk()
    )
    return model

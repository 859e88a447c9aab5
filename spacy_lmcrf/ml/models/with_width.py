"""spacy_lmcrf.WithWidth.v1 (deprecated): a tok2vec whose output width is declared in the config."""

import warnings
from typing import Callable, List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d


@registry.architectures("spacy_lmcrf.WithWidth.v1")
def build_with_width(
    tok2vec: Model[List[Doc], List[Floats2d]], width: int
) -> Model[List[Doc], List[Floats2d]]:
    """Deprecated, no longer needed: spacy_lmcrf.CRFTagger.v1 takes a tok2vec whose output
    width is unknown until initialization, such as spacy-transformers' TransformerListener,
    and sizes its head then. Put the tok2vec directly in the CRF's config.

    Kept so that configs and pipelines that use it still load: it passes the tok2vec's
    output through, and initialization still checks the declared width against the
    tok2vec's.

    tok2vec (Model[List[Doc], List[Floats2d]]): the tok2vec, e.g.
        spacy-transformers.TransformerListener.v1.
    width (int): its output width (768 for roberta-base and bert-base models).
    """
    warnings.warn(
        "spacy_lmcrf.WithWidth.v1 is deprecated and no longer needed: spacy_lmcrf.CRFTagger.v1 "
        "infers its tok2vec's width at initialization; use the tok2vec directly.",
        DeprecationWarning,
        stacklevel=2,
    )
    return Model(
        "with_width",
        forward,
        init=init,
        layers=[tok2vec],
        refs={"tok2vec": tok2vec},
        dims={"nO": width},
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    if tok2vec.has_dim("nO") and tok2vec.get_dim("nO") != model.get_dim("nO"):
        raise ValueError(
            f"WithWidth: width = {model.get_dim('nO')} in the config, but the tok2vec's output "
            f"has width {tok2vec.get_dim('nO')} (the transformer's hidden size); set width to it."
        )
    return model


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    return model.get_ref("tok2vec")(docs, is_train)

"""spacy_lmcrf.ContextFusion.v1: position-aware self-attention and a fusion gate (PSA)."""

from spacy.util import registry

from ..modules.psa import ContextFusion, PositionAwareSelfAttention


@registry.architectures("spacy_lmcrf.ContextFusion.v1")
def build_context_fusion(
    self_disabled_mask: bool = True,
    relative_position: bool = True,
    gaussian: bool = True,
    max_distance: int = 10,
    window: float = 10.0,
    position_weight: float = 1 / 3,
    gaussian_weight: float = 1 / 3,
    dropout: float = 0.2,
) -> ContextFusion:
    """A self-attentional context fusion layer with position-aware self-attention
    (Wei et al.; a part for spacy_lmcrf.PSATok2Vec.v1). Its width is set by the
    tok2vec that holds it. Defaults are the paper's: all three positional biases,
    r = k = 10, dropout 0.2 on the attention output. The paper gives no alphas beyond
    alpha1 + alpha2 + alpha3 = 1; the defaults split it in thirds.

    self_disabled_mask (bool): M, no token attends to itself (eq. 9).
    relative_position (bool): P, the token-specific relative-position bias (eq. 11).
    gaussian (bool): G, the distance-aware Gaussian bias (eq. 10).
    max_distance (int): r, the largest relative distance P tells apart.
    window (float): k, the Gaussian's standard deviation is k / 2.
    position_weight (float): alpha2, the weight of P.
    gaussian_weight (float): alpha3, the weight of G.
    dropout (float): dropout on the attention output.
    """
    attention = PositionAwareSelfAttention(
        self_disabled_mask=self_disabled_mask,
        relative_position=relative_position,
        gaussian=gaussian,
        max_distance=max_distance,
        window=window,
        position_weight=position_weight,
        gaussian_weight=gaussian_weight,
    )
    return ContextFusion(attention, dropout)

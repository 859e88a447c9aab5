"""CRFSequenceLabeler: the trainable component every CRF labeler of this package extends.

A subclass says where gold tags come from (_gold_tags), whether a doc carries its kind of
annotation at all (_has_annotation), which labels the training data has
(_labels_from_examples) and how decoded tags are written (_write_annotations).

Joint training (Yang et al. 2016) feeds one batch stream to heads trained on different
corpora: a head learns only from the examples that carry its annotation and, when it
has a `corpus`, come from that corpus (doc.user_data["lmcrf_corpus"], set by
spacy_lmcrf.TaskCorpora.v1); the others add no loss, no gradient and no optimizer step.
"""

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

import numpy
import srsly
import torch
from spacy import util
from spacy.attrs import IS_SPACE
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.tok2vec import Tok2Vec, Tok2VecListener
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer

from ..ml.crf import (
    NEG_INF,
    chunk_log_prob,
    crf_loss,
    forward_backward,
    restrict_tags,
    viterbi,
)
from ..ml.models.crf_tagger import CRFGroup, CRFScores, get_crf_module
from ..ml.models.lm_lstm_tok2vec import LM_LOSS, LM_LOSS_SCALE, lm_loss_layers, pop_lm_loss
from ..tags import (
    OUTSIDE,
    SCHEMES,
    allowed_transitions,
    chunk_boundaries,
    chunks_from_tag_ids,
    split_tag,
    tag_names,
    unknown_across_cuts,
)
from ..training.corpus import CORPUS_KEY, doc_corpus
from ..training.optimizers import clip_gradient_norm, report_training_loss
from .defaults import DEFAULT_MAX_LOSS_PER_TOKEN
from .nbest import SentencePaths, nbest_paths
from .rehearsal import HandOverGradients, rehearsal_loss
from .serialize import (
    CHECKSUM_KEY,
    check_cfg,
    check_checksum,
    check_crf_matches_cfg,
    read_cfg,
    read_model_bytes,
    weights_checksum,
)
from .update_pieces import update_pieces

Span3 = Tuple[int, int, str]


class TrainingDiverged(ValueError):
    """A training loss that is non-finite or far beyond what a working model gives."""


@dataclass
class CRFPrediction:
    """Decoded tags per doc, and for span labelers the spans with their probabilities."""

    tags: List[List[str]]
    spans: Optional[List[List[Span3]]] = None
    span_scores: Optional[List[numpy.ndarray]] = None
    # the positions, in the batch, of the docs predicted (None: all of them)
    doc_indices: Optional[List[int]] = None


class CRFSequenceLabeler(TrainablePipe):
    """Label each token with a CRF over a tok2vec's vectors.

    scheme (Optional[str]): the tag scheme spans are encoded in ("BIOES", "BILUO",
        "IOB2", "IOB1"), or None for plain token tags (no transition constraints).
        With a scheme, whitespace tokens are decoded as "O": no span includes one.
    margin_cost (float): 0 trains the negative log-likelihood; a positive value trains
        the softmax-margin objective with this Hamming cost (Yang et al. 2016 use 5).
    corpus (Optional[str]): only docs of this corpus (doc.user_data["lmcrf_corpus"]) or
        of none train and are annotated by this component (a language's head in
        cross-lingual joint training); None: every doc.
    max_loss_per_token (float): a batch loss per token above this (or a non-finite
        one) stops training with TrainingDiverged before the weights take it; 0: no limit.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str,
        *,
        scheme: Optional[str],
        margin_cost: float = 0.0,
        corpus: Optional[str] = None,
        max_loss_per_token: float = DEFAULT_MAX_LOSS_PER_TOKEN,
        scorer: Optional[Callable] = None,
        **cfg,
    ) -> None:
        if scheme is not None and scheme not in SCHEMES:
            raise ValueError(f"Unknown tag scheme {scheme!r}; use one of {SCHEMES} or None.")
        if margin_cost < 0:
            raise ValueError(f"margin_cost must be >= 0, got {margin_cost}")
        if not max_loss_per_token >= 0:
            raise ValueError(f"max_loss_per_token must be >= 0, got {max_loss_per_token}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg = {
            "labels": [],
            "scheme": scheme,
            "margin_cost": float(margin_cost),
            "corpus": corpus,
            "max_loss_per_token": float(max_loss_per_token),
            **cfg,
        }
        # the updates this component trained on, for the step named in errors
        self._n_updates = 0
        # the optimizer of the last finish_update(), for the learning rate named in errors
        self._last_optimizer: Optional[Optimizer] = None
        # whether update() has backpropagated since the last finish_update()
        self._has_gradient = False
        # the loss of the updates since the last step, for schedules that anneal on it
        self._loss_since_step = 0.0
        # (losses key, layer) of the co-trained LMs in upstream tok2vec components
        self._shared_lms: List[Tuple[str, Model]] = []
        # the copy nlp.resume_training() makes, whose predictions rehearse() keeps
        self._rehearsal_model: Optional[Model] = None

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tag_names(self) -> List[str]:
        scheme = self.cfg["scheme"]
        return tag_names(self.labels, scheme) if scheme else list(self.labels)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(f"Labels must be strings, got {label!r}")
        if label in self.labels:
            return 0
        if self._is_initialized:
            raise ValueError(
                f"Cannot add label {label!r} to '{self.name}' after it was initialized: "
                "the CRF's tag set is fixed. Add labels before nlp.initialize()."
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    @property
    def _is_initialized(self) -> bool:
        return get_crf_module(self.model).n_tags == len(self.tag_names) > 1

    def _configure_crf(self) -> None:
        names = self.tag_names
        allowed, start, end = allowed_transitions(names, self.cfg["scheme"])
        get_crf_module(self.model).configure(len(names), allowed, start, end)
        self.model.set_dim("nO", len(names), force=True)

    # Subclasses define these four.
    def _labels_from_examples(self, examples: Iterable[Example]) -> Iterable[str]:
        raise NotImplementedError

    def _has_annotation(self, example: Example) -> bool:
        """Whether the reference carries this component's kind of annotation at all."""
        raise NotImplementedError

    def _gold_tags(self, example: Example) -> List[Optional[str]]:
        """One tag per predicted token in the component's scheme, None where unknown."""
        raise NotImplementedError

    def _write_annotations(self, docs: List[Doc], prediction: CRFPrediction) -> None:
        raise NotImplementedError

    def is_mine(self, doc: Doc) -> bool:
        """Whether this component trains on and annotates doc (see `corpus`)."""
        corpus = self.cfg.get("corpus")
        return corpus is None or doc_corpus(doc) in (None, corpus)

    def trains_on(self, example: Example) -> bool:
        """Whether example teaches this component anything: it is its corpus's and
        carries its annotation. Other examples add no loss and no gradient."""
        return self.is_mine(example.predicted) and self._has_annotation(example)

    def set_annotations(self, docs: Iterable[Doc], prediction: CRFPrediction) -> None:
        docs = list(docs)
        if prediction.doc_indices is not None:
            docs = [docs[i] for i in prediction.doc_indices]
        self._write_annotations(docs, prediction)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Find the labels in the training data (or take labels, e.g. from
        `spacy init labels`) and build the model's vocabularies from every training doc."""
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        examples = [eg for eg in get_examples() if self.is_mine(eg.predicted)]
        if not examples:
            raise ValueError(
                f"'{self.name}' has no training example of its corpus {self.cfg['corpus']!r} "
                f"(doc.user_data[{CORPUS_KEY!r}]); check the corpus names of the reader."
            )
        found = sorted(set(self._labels_from_examples(examples))) if labels is None else labels
        for label in found:
            if label not in self.labels:
                self.cfg["labels"].append(label)
                self.vocab.strings.add(label)
        if not self.labels:
            raise ValueError(
                f"'{self.name}' found no labels in the training data; check that the "
                "examples carry the annotation this component learns."
            )
        self._configure_crf()
        docs = [eg.predicted for eg in examples]
        self.model.initialize(X=docs)
        for tok2vec in self._shared_tok2vecs_needing_all_docs(nlp):
            tok2vec.initialize(X=docs)
        if nlp is not None:
            self.find_shared_lms(nlp)

    def _shared_tok2vecs_needing_all_docs(self, nlp: Optional[Language]) -> List[Model]:
        """Upstream tok2vec layers this component listens to that build vocabularies
        from the training data. spaCy's tok2vec component initializes its model from
        ten docs only; these layers then extend their vocabularies with all our docs."""
        if nlp is None:
            return []
        return [
            node
            for _, proc in self._upstream_components(nlp)
            for node in proc.model.walk()
            if node.attrs.get("init_with_all_docs")
        ]

    def find_shared_lms(self, nlp: Language) -> None:
        """Find the co-trained language models of the upstream tok2vec components this
        one listens to: the first listening component to update after such a tok2vec
        reports its LM loss, as losses[TOK2VEC_NAME + "_lm"]. The factories call this,
        and initialize again."""
        self._shared_lms = [
            (f"{name}_lm", node)
            for name, proc in self._upstream_components(nlp)
            for node in lm_loss_layers(proc.model)
        ]

    def _upstream_components(self, nlp: Language) -> List[Tuple[str, TrainablePipe]]:
        """The (name, component) of the upstream components this one listens to: linked
        by spaCy already, or (before spaCy links them) spaCy's tok2vec components whose
        name a Tok2VecListener of ours names, or "*"."""
        listeners = [node for node in self.model.walk() if hasattr(node, "upstream_name")]
        mine = {node.id for node in listeners}
        found = []
        for name, proc in nlp.pipeline:
            linked = {node.id for node in getattr(proc, "listeners", None) or []}
            named = isinstance(proc, Tok2Vec) and any(
                isinstance(node, Tok2VecListener) and node.upstream_name in ("*", name)
                for node in listeners
            )
            if proc is not self and (linked & mine or named):
                found.append((name, proc))
        return found

    def predict(self, docs: Iterable[Doc]) -> CRFPrediction:
        docs = list(docs)
        mine = [i for i, doc in enumerate(docs) if self.is_mine(doc)]
        if len(mine) == len(docs):
            return self._decode(self.model.predict(docs), docs)
        docs = [docs[i] for i in mine]
        prediction = self._decode(self.model.predict(docs), docs)
        prediction.doc_indices = mine
        return prediction

    def _decode(self, scores: CRFScores, docs: List[Doc]) -> CRFPrediction:
        names = self.tag_names
        tags = [["O" if self.cfg["scheme"] else names[0]] * n for n in scores.doc_lengths]
        if not scores.groups:
            spans: Optional[List[List[Span3]]] = [[] for _ in docs] if self.cfg["scheme"] else None
            span_scores = (
                [numpy.zeros((0,), dtype="float32") for _ in docs] if spans is not None else None
            )
            return CRFPrediction(tags, spans, span_scores)
        scores = self._checked_and_constrained(scores, docs)
        best_paths = []
        for group in scores.groups:
            best_tensor, _ = viterbi(group.potentials, group.lengths)
            best = best_tensor.cpu().numpy()
            best_paths.append(best)
            for row, s in enumerate(group.rows):
                doc_i, start, end = scores.segments[s]
                tags[doc_i][start:end] = [names[i] for i in best[row, : end - start]]
        if not self.cfg["scheme"]:
            return CRFPrediction(tags)
        spans, span_scores = self._span_probabilities(scores, best_paths)
        return CRFPrediction(tags, spans, span_scores)

    def nbest(self, docs: Iterable[Doc], k: int = 5) -> List[List[SentencePaths]]:
        """The k most probable tag sequences of each sentence (or window) of each doc,
        with their probabilities, as the component decodes them (whitespace tokens "O",
        preset entities kept): exact, by list Viterbi over the CRF. Run the pipeline's
        components before this one on the docs first (nlp(text) does).

        docs (Iterable[Doc]): the docs.
        k (int): how many sequences per sentence at most.
        RETURNS (List[List[SentencePaths]]): per doc, its sentences in order, each with
            its best tag sequences, best first (a doc of another corpus: none).
        """
        docs = list(docs)
        per_doc: List[List[SentencePaths]] = [[] for _ in docs]
        mine = [i for i, doc in enumerate(docs) if self.is_mine(doc)]
        if not mine:
            return per_doc
        mine_docs = [docs[i] for i in mine]
        scores = self._checked_and_constrained(self.model.predict(mine_docs), mine_docs)
        found = nbest_paths(scores, self.tag_names, self.cfg["scheme"], k)
        for i, sentences in zip(mine, found):
            per_doc[i] = sentences
        return per_doc

    def _checked_and_constrained(self, scores: CRFScores, docs: List[Doc]) -> CRFScores:
        """scores, refused when not finite, and _constrained when there is a scheme."""
        if not all(bool(torch.isfinite(group.potentials).all()) for group in scores.groups):
            raise ValueError(
                f"'{self.name}': the model gives non-finite scores (NaN or infinity), so its "
                "output would be meaningless: its weights are damaged or training diverged."
            )
        return self._constrained(scores, docs) if self.cfg["scheme"] else scores

    def _fixed_spans(self, doc: Doc) -> List[Span3]:
        """Spans already on doc that decoding must keep (start, end, label); none here."""
        return []

    def _constrained(self, scores: CRFScores, docs: List[Doc]) -> CRFScores:
        """The scores restricted to the tag sequences decoding must respect: "O" on
        whitespace tokens, so that no span includes one (spaCy's NER lets no entity
        start on whitespace), and each fixed span (_fixed_spans) decoded as exactly that
        span. A fixed span the CRF cannot represent (a label it does not know, a
        whitespace token, or tokens of two segments) gets "O" on its tokens instead, so
        that nothing decoded overlaps it. Viterbi and every span probability see only
        the sequences that respect this."""
        is_space = [doc.to_array(IS_SPACE).astype(bool) for doc in docs]
        fixed = [self._fixed_spans(doc) for doc in docs]
        if not any(flags.any() for flags in is_space) and not any(fixed):
            return scores
        labels, _, opens_first, opens, closes = _chunk_tables(
            tuple(self.tag_names), self.cfg["scheme"]
        )
        outside = numpy.array([name == OUTSIDE for name in self.tag_names])
        label_tags = {label: numpy.array([x == label for x in labels]) for label in self.labels}
        groups = []
        for group in scores.groups:
            n_rows, n_steps, n_tags = group.potentials.shape[:3]
            allowed = numpy.ones((n_rows, n_steps, n_tags), dtype=bool)
            pairs: Optional[numpy.ndarray] = None
            for row, s in enumerate(group.rows):
                doc_i, start, end = scores.segments[s]
                allowed[row, : end - start][is_space[doc_i][start:end]] = outside
                for span_start, span_end, label in fixed[doc_i]:
                    if span_end <= start or span_start >= end:
                        continue
                    first, stop = max(span_start, start) - start, min(span_end, end) - start
                    if not (
                        start <= span_start
                        and span_end <= end
                        and label in label_tags
                        and not is_space[doc_i][span_start:span_end].any()
                    ):
                        allowed[row, first:stop] &= outside
                        continue
                    allowed[row, first:stop] &= label_tags[label]
                    if pairs is None:
                        pairs = numpy.ones((n_rows, n_steps, n_tags, n_tags), dtype=bool)
                    pairs[row, first] &= opens if first else opens_first[None, :]
                    pairs[row, first + 1 : stop] &= ~closes
                    if stop < end - start:
                        pairs[row, stop] &= closes
            potentials = group.potentials
            if not allowed.all():
                potentials = restrict_tags(potentials, torch.from_numpy(allowed))
            if pairs is not None:
                penalty = numpy.where(pairs, 0.0, NEG_INF)
                potentials = potentials + torch.from_numpy(penalty).to(
                    device=potentials.device, dtype=potentials.dtype
                )
            groups.append(replace(group, potentials=potentials))
        return replace(scores, groups=groups)

    def _span_probabilities(
        self, scores: CRFScores, best_paths: List[numpy.ndarray]
    ) -> Tuple[List[List[Span3]], List[numpy.ndarray]]:
        """Each decoded span and its marginal probability: the probability, over all
        tag sequences, that the decoded spans include exactly this one (its start, end
        and label). best_paths: each group's decoded tag indices, (S, T)."""
        labels, tags_of_label, *boundaries = _chunk_tables(
            tuple(self.tag_names), self.cfg["scheme"]
        )
        segments = numpy.asarray(scores.segments, dtype=numpy.int64).reshape((-1, 3))
        found = []  # per group: (segment, start, end, first tag, probability) of its spans
        for group, best in zip(scores.groups, best_paths):
            lengths = group.lengths.cpu().numpy()
            rows, starts, ends = chunks_from_tag_ids(best, lengths, *boundaries)
            first_tags = best[rows, starts]
            chunk_tags = tags_of_label[first_tags]
            probs = self._chunk_probabilities(group, rows, starts, ends, chunk_tags, boundaries)
            group_segments = numpy.asarray(group.rows, dtype=numpy.int64)[rows]
            found.append((group_segments, starts, ends, first_tags, probs))
        seg, starts, ends, first_tags, probs = (numpy.concatenate(x) for x in zip(*found))
        doc_i = segments[seg, 0]
        starts, ends = starts + segments[seg, 1], ends + segments[seg, 1]
        order = numpy.lexsort((starts, doc_i))
        doc_i, starts, ends = doc_i[order], starts[order], ends[order]
        span_labels = [labels[t] for t in first_tags[order].tolist()]
        probs = probs[order]
        bounds = numpy.cumsum(numpy.bincount(doc_i, minlength=len(scores.doc_lengths)))
        spans: List[List[Span3]] = []
        span_scores: List[numpy.ndarray] = []
        all_spans = list(zip(starts.tolist(), ends.tolist(), span_labels))
        for k_start, k_end in zip([0, *bounds[:-1].tolist()], bounds.tolist()):
            spans.append(all_spans[k_start:k_end])
            span_scores.append(probs[k_start:k_end])
        return spans, span_scores

    def _chunk_probabilities(
        self,
        group: CRFGroup,
        rows: numpy.ndarray,
        starts: numpy.ndarray,
        ends: numpy.ndarray,
        chunk_tags: numpy.ndarray,
        boundaries: Sequence[numpy.ndarray],
    ) -> numpy.ndarray:
        """The probabilities of chunks [start, end) of a group's rows, float32 (N,);
        chunk_tags (N, P): the tags a token of each chunk may carry, -1 padding;
        boundaries: the scheme's chunk_boundaries (opens_first, opens, closes).
        They are computed in float64: in float32 the log-partition of long or confident
        sequences leaves errors of 1e-5 and more."""
        if not len(rows):
            return numpy.zeros((0,), dtype="float32")
        pots, lengths = group.potentials.double(), group.lengths
        device = pots.device
        alpha, beta, log_z = forward_backward(pots, lengths)
        log_probs = chunk_log_prob(
            pots,
            alpha,
            beta,
            log_z,
            lengths,
            *(torch.from_numpy(x).to(device) for x in (rows, starts, ends, chunk_tags)),
            *(torch.from_numpy(table).to(device) for table in boundaries),
        )
        return log_probs.exp().clamp(0.0, 1.0).cpu().numpy().astype("float32")

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.update")
        mine = [eg for eg in examples if self.trains_on(eg)]
        if not any(len(eg.predicted) for eg in mine):
            self._pass_on_shared_tok2vec([eg.predicted for eg in examples])
            _report_lm_losses(losses, self._shared_lms)
            return losses
        if not self._listens():
            # an inline tok2vec, and the language model it trains, see only our docs
            examples = mine
        own_lms = [(f"{self.name}_lm", node) for node in lm_loss_layers(self.model)]
        for _, node in own_lms:
            pop_lm_loss(node)
        docs = [eg.predicted for eg in examples]
        gold = self._gold_ids(examples)
        # a listener's tok2vec runs upstream on the whole batch: no pieces then
        pieces = (
            update_pieces(docs, gold, self._segment_lengths())
            if not self._listens()
            else [(docs, gold)]
        )
        n_words = max(sum(len(doc) for doc in docs), 1)
        n_mine = sum(len(eg.predicted) for eg in mine)
        self._n_updates += 1
        loss = 0.0
        lm_losses: Dict[str, Optional[float]] = {key: None for key, _ in own_lms}
        for piece_docs, piece_gold in pieces:
            # the piece's share of the LM loss, a mean over the batch's words
            share = sum(len(doc) for doc in piece_docs) / n_words if len(pieces) > 1 else 1.0
            for _, node in own_lms:
                node.attrs[LM_LOSS_SCALE] = share
            scores, backprop = self.model.begin_update(piece_docs)
            piece_loss, d_potentials = self._crf_loss(self._gold_groups(piece_gold, scores), scores)
            # (one piece: the batch, whose docs from other corpora a listener still sees)
            n_tokens = sum(len(doc) for doc in piece_docs) if len(pieces) > 1 else n_mine
            self._check_divergence(
                "CRF loss", piece_loss, piece_loss / max(n_tokens, 1), "token", sgd
            )
            for key, node in own_lms + self._shared_lms:
                self._check_lm_divergence(key, node, sgd)
            for key, node in own_lms:
                piece_lm_loss = pop_lm_loss(node)  # None without an LM (lm_weight = 0)
                if piece_lm_loss is not None:
                    lm_losses[key] = (lm_losses[key] or 0.0) + share * piece_lm_loss
            backprop(d_potentials)
            loss += piece_loss
        for key, node in own_lms:
            node.attrs[LM_LOSS_SCALE] = 1.0
            node.attrs[LM_LOSS] = lm_losses[key]
        self._has_gradient = True
        self._loss_since_step += loss
        if sgd not in (None, False):
            self.finish_update(cast(Optimizer, sgd))  # neither None nor False here
        losses[self.name] += loss
        _report_lm_losses(losses, own_lms + self._shared_lms)
        return losses

    def rehearse(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """A rehearsal update, as spaCy's components make one: after
        nlp.resume_training() (which copies the model), teach the model to keep the
        copy's tag-sequence distribution on the examples' docs (their annotation is not
        read). The loss, losses[self.name], is KL(copy || model) summed over the
        sentences (see spacy_lmcrf.pipeline.rehearsal); a co-trained LM learns from
        the text as in update. Without resume_training there is no copy, and nothing
        changes (spaCy's components do the same).

        examples (Iterable[Example]): the batch; only its predicted docs are read.
        drop (float): unused (dropout is the model's setting, as in update).
        sgd (Optional[Optimizer]): the optimizer, or the gradient collector
            nlp.rehearse passes.
        losses (Optional[Dict[str, float]]): the loss of each component, updated.
        RETURNS (Dict[str, float]): losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.rehearse")
        docs = [eg.predicted for eg in examples if self.is_mine(eg.predicted)]
        if self._rehearsal_model is None or not any(len(doc) for doc in docs):
            return losses
        teacher = self._rehearsal_model.predict(docs)
        own_lms = [(f"{self.name}_lm", node) for node in lm_loss_layers(self.model)]
        scores, backprop = self.model.begin_update(docs)
        loss, d_potentials = rehearsal_loss(scores, teacher)
        backprop(d_potentials)
        self._has_gradient = True
        if sgd not in (None, False):
            # nlp.rehearse passes a function that collects the gradients, not an Optimizer
            step = sgd if isinstance(sgd, Optimizer) else HandOverGradients(cast(Any, sgd))
            self.finish_update(cast(Optimizer, step))
        losses[self.name] += loss
        _report_lm_losses(losses, own_lms)
        return losses

    def _segment_lengths(self) -> List[int]:
        """The max_length of every layer of the model that cuts docs into segments."""
        lengths = [node.attrs.get("max_length") for node in self.model.walk()]
        return [length for length in lengths if isinstance(length, int) and length >= 1]

    def _check_lm_divergence(self, key: str, node: Model, sgd: Optional[Optimizer]) -> None:
        """Stop on a co-trained LM's loss (lm_weight x the forward plus the backward
        cross-entropy per word) that is non-finite or exceeds 2 x max_loss_per_token
        per word and direction."""
        loss = node.attrs[LM_LOSS]
        if loss is not None:
            per_word = loss / max(node.attrs.get("lm_weight", 1.0), 1e-12) / 2
            self._check_divergence(f"language-model loss ({key})", loss, per_word, "word", sgd)

    def _check_divergence(self, what: str, loss: float, per_unit: float, unit: str, sgd) -> None:
        """Raise TrainingDiverged if loss is non-finite or its value per unit exceeds
        cfg["max_loss_per_token"] (0: no limit): stepping on it would write garbage."""
        limit = self.cfg.get("max_loss_per_token", 0.0)
        if math.isfinite(loss) and not (limit and per_unit > limit):
            return
        learn_rate = getattr(sgd or self._last_optimizer, "learn_rate", None)
        rate = f" (last {learn_rate:g})" if isinstance(learn_rate, (int, float)) else ""
        reason = (
            "is not finite"
            if not math.isfinite(loss)
            else f"is {per_unit:.4g} per {unit}, above max_loss_per_token = {limit:g}"
        )
        raise TrainingDiverged(
            f"'{self.name}' diverged in its update {self._n_updates} of this run (spaCy's "
            f"step {self._n_updates - 1} if it trains on every batch): the {what} of the "
            f"batch is {loss:.6g} and {reason}. "
            f"The weights were not updated with it. Lower the learning rate{rate}, e.g. "
            "[training.optimizer] learn_rate ten times smaller, or clip gradients "
            "(grad_clip, grad_norm_clip)."
        )

    def _listens(self) -> bool:
        """Whether the model reads an upstream component's output (a listener)."""
        return any(hasattr(node, "upstream_name") for node in self.model.walk())

    def _pass_on_shared_tok2vec(self, docs: List[Doc]) -> None:
        """Hand a zero gradient back to the shared tok2vec this component listens to,
        without touching our own weights. spaCy's tok2vec component backpropagates
        (and steps its optimizer) only when its last listener returns a gradient, so
        a head that sits out a batch must still answer, or the other heads' gradients
        for that batch are lost."""
        listeners = [node for node in self.model.walk() if hasattr(node, "upstream_name")]
        if not listeners:
            return
        if all(isinstance(node, Tok2VecListener) for node in listeners):
            batch_id = Tok2VecListener.get_batch_id(docs)
            for node in cast(List[Tok2VecListener], listeners):  # all are, tested above
                if node._batch_id == batch_id:
                    outputs, backprop = node.begin_update(docs)
                    backprop([node.ops.alloc2f(*output.shape) for output in outputs])
            return
        # Other listeners (e.g. spacy-transformers'): a zero gradient through the whole
        # model reaches them; our weights get zero gradients and no optimizer step.
        scores, backprop = self.model.begin_update(docs)
        if scores.groups:
            backprop([torch.zeros_like(group.potentials) for group in scores.groups])

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the optimizer, unless no batch since the last step trained this
        component: spaCy calls finish_update on every component after each batch, and
        an optimizer with momentum (or weight decay) moves weights even without a
        gradient, so a head whose task is absent from a batch would drift."""
        self._last_optimizer = sgd
        if not self._has_gradient:
            return
        self._has_gradient = False
        report_training_loss(sgd, self._loss_since_step)
        self._loss_since_step = 0.0
        max_norm = getattr(sgd, "grad_norm_clip", 0.0)
        if max_norm:
            clip_gradient_norm(self.model, max_norm)
        self.model.finish_update(sgd)

    def get_loss(
        self, examples: Iterable[Example], scores: CRFScores
    ) -> Tuple[float, List[torch.Tensor]]:
        """The CRF loss summed over the batch's segments, and its gradient with respect
        to the potentials (one tensor per group of scores). Tokens without a gold tag are
        marginalised, not trained as O."""
        examples = list(examples)
        return self._crf_loss(self._gold_groups(self._gold_ids(examples), scores), scores)

    def _crf_loss(
        self, golds: List[torch.Tensor], scores: CRFScores
    ) -> Tuple[float, List[torch.Tensor]]:
        """get_loss, given the gold tag ids of each group of scores."""
        total, gradients = 0.0, []
        for group, gold in zip(scores.groups, golds):
            potentials = group.potentials.detach().requires_grad_()
            with torch.enable_grad():
                losses = crf_loss(potentials, group.lengths, gold, cost=self.cfg["margin_cost"])
                # a segment without any gold tag (e.g. a doc without this annotation in a
                # mixed batch) gets exactly zero loss and gradient
                loss = torch.where((gold >= 0).any(dim=1), losses, torch.zeros_like(losses)).sum()
                loss.backward()
            total += float(loss.detach())
            assert potentials.grad is not None  # loss.backward() set it
            gradients.append(potentials.grad)
        return total, gradients

    def _gold_ids(self, examples: List[Example]) -> List[List[int]]:
        """The gold tag indices (-1: unknown) of each example's predicted tokens."""
        index = {name: i for i, name in enumerate(self.tag_names)}
        per_doc = []
        for i, eg in enumerate(examples):
            if not self.trains_on(eg):
                per_doc.append([-1] * len(eg.predicted))
                continue
            try:
                tags = self._gold_tags(eg)
            except ValueError as error:
                raise wrap_gold_error(self.name, i, eg, error) from error
            ids = []
            for tag in tags:
                if tag is None:
                    ids.append(-1)
                elif tag in index:
                    ids.append(index[tag])
                else:
                    raise ValueError(
                        f"'{self.name}': the gold tag {tag!r} of example {i} "
                        f"({_preview(eg)}) is not among the labels {list(self.labels)} "
                        "found at initialization."
                    )
            per_doc.append(ids)
        return per_doc

    def _gold_groups(
        self, per_doc: Sequence[Sequence[int]], scores: CRFScores
    ) -> List[torch.Tensor]:
        """The gold tag indices of each group of scores, (S, T) like its rows. With a
        scheme, a gold chunk that a segment boundary cuts is unknown on both sides
        (tags.unknown_across_cuts): its halves would be paths the CRF forbids."""
        if self.cfg["scheme"]:
            cuts: Dict[int, List[int]] = {}
            for doc_i, start, _ in scores.segments:
                if start > 0:
                    cuts.setdefault(doc_i, []).append(start)
            names = self.tag_names
            per_doc = [
                unknown_across_cuts(ids, cuts[i], names, self.cfg["scheme"]).tolist()
                if i in cuts
                else ids
                for i, ids in enumerate(per_doc)
            ]
        golds = []
        for group in scores.groups:
            gold = numpy.full(tuple(group.potentials.shape[:2]), -1, dtype="int64")
            for row, s in enumerate(group.rows):
                doc_i, start, end = scores.segments[s]
                gold[row, : end - start] = per_doc[doc_i][start:end]
            golds.append(torch.from_numpy(gold).to(group.potentials.device))
        return golds

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """The component as bytes; its cfg records the checksum of its weights."""
        model_bytes = self._model_bytes_with_checksum()
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": lambda: model_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> "CRFSequenceLabeler":
        """Load what to_bytes wrote, refusing damaged or mismatched data."""
        source = f"the serialized component '{self.name}'"
        try:
            msg = srsly.msgpack_loads(bytes_data)
        except Exception as error:
            raise ValueError(f"{source} is damaged (not msgpack: {error}).") from None
        if "vocab" not in exclude and "vocab" in msg:
            self.vocab.from_bytes(msg["vocab"], exclude=exclude)
        cfg = None
        if "cfg" not in exclude:
            if "cfg" not in msg:
                raise ValueError(f"{source} has no cfg (its labels and tag scheme).")
            cfg = srsly.json_loads(msg["cfg"])
        model_bytes = msg.get("model") if "model" not in exclude else None
        self._load(cfg, model_bytes, source)
        return self

    def to_disk(self, path, *, exclude: Iterable[str] = tuple()) -> None:
        """Save the component in path; its cfg records the checksum of its weights."""
        model_bytes = self._model_bytes_with_checksum()
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: Path(p).write_bytes(model_bytes),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "CRFSequenceLabeler":
        """Load what to_disk wrote; a missing, damaged or mismatched file raises a
        ValueError naming the pipeline folder and what disagrees."""
        path = util.ensure_path(path)
        source = f"component '{self.name}' of the pipeline in {path.parent}"
        if "vocab" not in exclude and (path / "vocab").exists():
            self.vocab.from_disk(path / "vocab", exclude=exclude)
        cfg = read_cfg(path / "cfg", source) if "cfg" not in exclude else None
        model_bytes = read_model_bytes(path / "model", source) if "model" not in exclude else None
        self._load(cfg, model_bytes, source)
        return self

    def _model_bytes_with_checksum(self) -> bytes:
        model_bytes = self.model.to_bytes()
        self.cfg[CHECKSUM_KEY] = weights_checksum(model_bytes, self.labels, self.cfg["scheme"])
        return model_bytes

    def _load(self, cfg: Optional[Dict], model_bytes: Optional[bytes], source: str) -> None:
        if cfg is not None:
            check_cfg(cfg, source)
            if model_bytes is not None:
                check_checksum(cfg, model_bytes, source)
            self.cfg.update(cfg)
        if model_bytes is None:
            return
        try:
            self.model.from_bytes(model_bytes)
        except Exception as error:
            raise ValueError(
                f"{source}: the weights cannot be read ({type(error).__name__}: {error}); "
                "the file is damaged or belongs to another model."
            ) from error
        check_crf_matches_cfg(get_crf_module(self.model), self.cfg, source)


def _report_lm_losses(losses: Dict[str, float], lms: List[Tuple[str, Model]]) -> None:
    """Add each LM layer's loss of its last training pass to losses[key], once."""
    for key, node in lms:
        loss = pop_lm_loss(node)
        if loss is not None:
            losses[key] = losses.get(key, 0.0) + loss


@lru_cache(maxsize=16)
def _chunk_tables(
    names: Tuple[str, ...], scheme: str
) -> Tuple[List[str], numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Each tag's label ("" for "O"); for each tag, the tags of its label (n_tags, P),
    -1 padding; and the scheme's chunk_boundaries over names."""
    labels = [split_tag(name, scheme)[1] for name in names]
    label_tags: Dict[str, List[int]] = {}
    for i, label in enumerate(labels):
        if label:
            label_tags.setdefault(label, []).append(i)
    width = max((len(tags) for tags in label_tags.values()), default=1)
    tags_of_label = numpy.full((len(names), width), -1, dtype=numpy.int64)
    for i, label in enumerate(labels):
        same = label_tags.get(label, [])
        tags_of_label[i, : len(same)] = same
    return (labels, tags_of_label, *chunk_boundaries(names, scheme))


def _preview(example: Example, n_words: int = 8) -> str:
    words = [t.text for t in islice(example.reference, n_words)]
    more = " ..." if len(example.reference) > n_words else ""
    return repr(" ".join(words) + more)


def wrap_gold_error(
    component: str, example_index: int, example: Example, error: ValueError
) -> ValueError:
    return ValueError(
        f"'{component}': example {example_index} ({_preview(example)}) has gold "
        f"annotation that cannot be encoded: {error}"
    )

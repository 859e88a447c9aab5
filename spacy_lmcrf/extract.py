"""A single-language (or single-task) pipeline out of a joint one.

    spacy lmcrf extract JOINT OUTPUT --keep ner_es [--name ner] [--lang es]

(or ``python -m spacy_lmcrf.extract`` with the same arguments).

Keeps the components named by --keep (one or more heads) and every tok2vec component
they listen to, in the joint pipeline's order, sourced with their trained weights into a
blank pipeline of --lang (default: the joint pipeline's), the kept head renamed to
--name if given. A head restricted to one corpus (its `corpus` setting) annotates every
doc without a corpus name, so the extracted pipeline labels plain text like the joint
one labels that language's docs.
"""

import sys
from typing import List, Optional, Protocol, Sequence, cast

import spacy
from spacy.language import Language
from thinc.api import Model


class _WithModel(Protocol):
    """A component with a Thinc model (a trainable pipe, a tok2vec)."""

    model: Model


def upstream_components(nlp: Language, name: str) -> List[str]:
    """The components whose listeners sit in component `name`'s model."""
    mine = {node.id for node in cast(_WithModel, nlp.get_pipe(name)).model.walk()}
    return [
        other
        for other, proc in nlp.pipeline
        if other != name
        and any(listener.id in mine for listener in getattr(proc, "listeners", None) or [])
    ]


def extract(
    joint: Language, keep: Sequence[str], *, lang: Optional[str] = None, name: Optional[str] = None
) -> Language:
    """A new pipeline with the kept components and their upstream tok2vecs (copies:
    sourcing re-links a component's listeners, so joint itself is left alone). The new
    pipeline keeps joint's license (meta["license"])."""
    license = joint.meta.get("license")
    joint = _copy(joint)
    missing = [k for k in keep if k not in joint.pipe_names]
    if missing:
        raise ValueError(f"no component {missing} in the pipeline ({', '.join(joint.pipe_names)})")
    if name is not None and len(keep) != 1:
        raise ValueError("--name renames one kept component; keep exactly one")
    wanted = set(keep)
    for k in keep:
        wanted.update(upstream_components(joint, k))
    new_lang = lang or joint.lang
    assert new_lang is not None  # a pipeline loaded from its config has its language
    nlp = spacy.blank(new_lang)
    for component in joint.pipe_names:
        if component in wanted:
            new_name = name if (name is not None and component in keep) else component
            nlp.add_pipe(component, name=new_name, source=joint)
    if license:
        nlp.meta["license"] = license
    return nlp


def _copy(nlp: Language) -> Language:
    copy = spacy.util.load_model_from_config(nlp.config, auto_fill=False, validate=False)
    return copy.from_bytes(nlp.to_bytes())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m spacy_lmcrf.extract`: `spacy lmcrf extract` (the same arguments);
    returns the exit status."""
    from .cli import run_as_program

    args = sys.argv[1:] if argv is None else argv
    return run_as_program("extract", args, "python -m spacy_lmcrf.extract")


if __name__ == "__main__":
    sys.exit(main())

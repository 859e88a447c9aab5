"""Saving and loading a CRF component so that damaged or mismatched files are refused.

spaCy's TrainablePipe loads what it reads: a missing cfg, a dropped label or a changed
scheme load and fail later on the first doc, reordered labels silently swap the output,
flipped bits in the weights are used. Here the component's cfg records a SHA-256 of the
model's bytes, its labels and scheme (CHECKSUM_KEY), checked before anything is loaded,
and the loaded CRF is checked against the cfg's tag set. Pipelines saved without the
checksum (before it existed) still load, with the structural checks only.
"""

import hashlib
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy
import srsly

from ..ml.modules.crf_potentials import CRFPotentials
from ..tags import SCHEMES, allowed_transitions, tag_names

CHECKSUM_KEY = "weights_sha256"


def weights_checksum(model_bytes: bytes, labels: Sequence[str], scheme: Optional[str]) -> str:
    """The SHA-256 of the serialized model together with the labels and scheme that give
    its tag indices their meaning."""
    digest = hashlib.sha256()
    digest.update(srsly.json_dumps({"labels": list(labels), "scheme": scheme}).encode("utf8"))
    digest.update(model_bytes)
    return digest.hexdigest()


def read_cfg(path: Path, source: str) -> Dict[str, Any]:
    """The component's cfg file, with errors that name it."""
    if not path.is_file():
        raise ValueError(
            f"{source}: the component's cfg file is missing ({path}); it holds the labels "
            "and tag scheme the weights were trained with, so the component cannot be loaded."
        )
    try:
        cfg = srsly.read_json(path)
    except Exception as error:
        raise ValueError(f"{source}: the cfg file {path} is damaged ({error}).") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: the cfg file {path} holds no JSON object.")
    return cfg


def read_model_bytes(path: Path, source: str) -> bytes:
    if not path.is_file():
        raise ValueError(f"{source}: the weights file is missing ({path}).")
    return path.read_bytes()


def check_checksum(cfg: Dict[str, Any], model_bytes: bytes, source: str) -> None:
    """Refuse weights (or labels and scheme) that differ from those saved together."""
    expected = cfg.get(CHECKSUM_KEY)
    if expected is None:
        return
    found = weights_checksum(model_bytes, cfg.get("labels", []), cfg.get("scheme"))
    if found != expected:
        raise ValueError(
            f"{source}: the weights and the cfg's labels and scheme do not match the checksum "
            f"saved with them ({CHECKSUM_KEY} {expected[:12]}..., found {found[:12]}...): a "
            "file is damaged or was edited. Use an intact copy of the pipeline."
        )


def check_cfg(cfg: Dict[str, Any], source: str) -> None:
    """The cfg's labels are distinct strings and its scheme is known."""
    labels, scheme = cfg.get("labels"), cfg.get("scheme")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"{source}: the cfg's labels must be a list of strings, got {labels!r}.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{source}: the cfg's labels repeat a label: {labels}.")
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(f"{source}: the cfg's tag scheme {scheme!r} is not one of {SCHEMES}.")


def check_crf_matches_cfg(crf: CRFPotentials, cfg: Dict[str, Any], source: str) -> None:
    """The loaded CRF has the cfg's tags and the scheme's transition constraints."""
    labels, scheme = cfg["labels"], cfg.get("scheme")
    if not labels:
        return  # saved before initialize: nothing was trained
    names = tag_names(labels, scheme) if scheme else list(labels)
    if crf.n_tags != len(names):
        raise ValueError(
            f"{source}: the cfg's {len(labels)} labels in scheme {scheme} make {len(names)} "
            f"tags, but the weights are for {crf.n_tags} tags: the cfg does not belong to "
            "these weights."
        )
    expected = allowed_transitions(names, scheme)
    found = (crf.allowed_transitions, crf.allowed_start, crf.allowed_end)
    for what, mask, saved in zip(("transitions", "start tags", "end tags"), expected, found):
        if not numpy.array_equal(mask, saved.cpu().numpy()):
            raise ValueError(
                f"{source}: the weights' allowed {what} are not those of scheme {scheme} "
                f"over the cfg's labels: the cfg does not belong to these weights."
            )

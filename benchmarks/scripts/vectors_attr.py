"""Write the token attribute of a pipeline's vectors back into vocab/vectors.cfg.

    python benchmarks/scripts/vectors_attr.py DIR [DIR ...] --attr LOWER

spaCy 3.8.18 forgets `spacy init vectors --attr LOWER` when it saves vectors in the default
mode: `vocab/vectors.cfg` keeps only {"mode": "default"}, so a reloaded pipeline looks its
static vectors up by ORTH and, with lowercased vectors such as GloVe, a capitalised word
(most entities) gets no vector. spaCy still reads an "attr" key from that file, so writing
it back is how a user who knows the bug gives spaCy's components their vectors. DIR is a
vectors directory (before `spacy train` reads it in [initialize] vectors) or a saved
pipeline (model-best, model-last, before `spacy evaluate` or `spacy.load`).
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import srsly
from spacy.attrs import IDS


def set_vectors_attr(path: Path, attr: str) -> Path:
    """Set the vectors' key attribute in PATH/vocab/vectors.cfg; return that file.

    path (Path): a directory saved by spaCy with a vocab/ (vectors dir or pipeline).
    attr (str): the token attribute the vectors are keyed by, e.g. "LOWER" or "ORTH".
    RETURNS (Path): the vectors.cfg written.
    """
    cfg_path = Path(path) / "vocab" / "vectors.cfg"
    if not cfg_path.exists():
        raise FileNotFoundError(
            f"{cfg_path}: no vectors settings (is {path} a spaCy vectors dir or pipeline?)"
        )
    name = attr.upper()
    if name not in IDS:
        raise ValueError(f"unknown token attribute {attr!r} (e.g. LOWER, ORTH, NORM)")
    cfg = srsly.read_json(cfg_path)
    if cfg.get("mode", "default") != "default":
        raise ValueError(
            f"{cfg_path}: mode {cfg['mode']!r} vectors keep their attr; nothing to restore"
        )
    cfg["attr"] = IDS[name]
    srsly.write_json(cfg_path, cfg)
    return cfg_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", type=Path, nargs="+", help="vectors dirs or saved pipelines")
    parser.add_argument("--attr", default="LOWER", help="token attribute (default LOWER)")
    args = parser.parse_args(argv)
    try:
        for path in args.paths:
            print(f"{set_vectors_attr(path, args.attr)}: attr {args.attr.upper()}")
    except (OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

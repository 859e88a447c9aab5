"""Values derived from a model's attrs (lookup tables built from its vocabulary lists),
built once and kept until those attrs are replaced."""

from typing import Any, Callable, Dict, Tuple, TypeVar

from thinc.api import Model

T = TypeVar("T")


def derived_value(holder: Model, name: str, sources: Tuple[Any, ...], build: Callable[[], T]) -> T:
    """build(), computed once for sources and kept on holder's shim (a wrapped torch
    module's), so it is never serialized with the attrs. It is built again when any of
    sources is another object than before: initialize and from_bytes replace the attrs
    (the vocabulary lists) it is derived from rather than change them in place.

    holder (Model): a model with a shim, e.g. a tok2vec's wrapped torch module.
    name (str): what is derived, one entry per name.
    sources (Tuple[Any, ...]): the attrs values the value is derived from.
    build (Callable[[], T]): builds the value from them.
    RETURNS (T): the value.
    """
    cache: Dict[str, Tuple[Tuple[Any, ...], Any]] = holder.shims[0].__dict__.setdefault(
        "derived_values", {}
    )
    entry = cache.get(name)
    if (
        entry is None
        or len(entry[0]) != len(sources)
        or any(old is not new for old, new in zip(entry[0], sources))
    ):
        entry = cache[name] = (sources, build())
    return entry[1]

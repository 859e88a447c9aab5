"""The [sections] of a pretraining config, read with the defaults filled in and unknown keys
refused."""

from typing import Any, Dict, Mapping


def read_section(
    config: Mapping[str, Any], name: str, defaults: Dict[str, Any], source: str
) -> Dict[str, Any]:
    """config[name] over defaults; a key not in defaults is an error naming it."""
    given = dict(config.get(name) or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"{source}: unknown setting(s) in [{name}]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(defaults))})"
        )
    return {**defaults, **given}

"""The modes the Python API takes, as Literal types: type checkers catch a misspelt mode, the
functions reject one at run time with `check`, and the CLI's choices are made from them."""
from __future__ import annotations

from typing import Any, Literal, get_args

ConvertMode = Literal["new", "overwrite", "append"]
OnError = Literal["fail", "skip"]
Snapshot = Literal["auto", "partial", "full"]
LakeFormat = Literal["parquet", "delta"]
ExportFormat = Literal["auto", "labelstudio", "dataloop"]


def choices(mode: Any) -> list[str]:
    """The values of a Literal mode type, in order."""
    return list(get_args(mode))


def check(name: str, value: object, mode: Any) -> None:
    """A ValueError naming the accepted values when `value` is not one of them."""
    allowed = get_args(mode)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ValueError(f"{name} must be {listed}, not {value!r}")

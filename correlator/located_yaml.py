"""YAML whose mappings remember their lines: for rule-side loaders (asset inventory, scoring weights) whose errors
name the file, line and key. Duplicate keys are errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from correlator.errors import CorrelatorError

__all__ = ["Located", "LocatedError", "load_located_yaml"]


class Located(dict[str, Any]):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class _LocatedLoader(yaml.SafeLoader):
    pass


# libyaml's parser when PyYAML has it (several times faster: playbooks and inventories are read at every start and
# reload); a document it refuses is parsed again by the Python loader, whose error messages name the problem.
_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLocatedLoader(yaml.CSafeLoader):
        pass

    _FastLoader = _CLocatedLoader


def _construct_located(loader: _LocatedLoader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = line
    return mapping


_LocatedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_located)
if _FastLoader is not None:
    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_located)


def load_located_yaml(text: str, source: str, error: Callable[..., CorrelatorError]) -> Any:
    """Parse YAML whose mappings are `Located`; a syntax error becomes `error(reason, source=..., line=...)`."""
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a CSafeLoader subclass
        except yaml.YAMLError:
            pass  # the Python loader says why, in its words
    try:
        return yaml.load(text, Loader=_LocatedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise error(f"invalid YAML: {exc.problem or exc.context}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", source=source) from None


class LocatedError(CorrelatorError):
    """An error in a rule-side file: ``file:line: key: reason`` (line and key where known)."""

    def __init__(self, reason: str, *, source: str, line: int | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.key = key
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")

    def to_dict(self) -> dict[str, object]:
        """The shape of `socctl rules check --json` failures: path, reason, line and key where known."""
        out: dict[str, object] = {"path": self.source, "reason": self.reason}
        if self.line is not None:
            out["line"] = self.line
        if self.key is not None:
            out["key"] = self.key
        return out

"""Located YAML: mappings that remember their lines, the same from libyaml's parser and from PyYAML's own (which
also words the errors), duplicate keys refused."""

from __future__ import annotations

from typing import Any

import pytest

from correlator import located_yaml
from correlator.located_yaml import Located, LocatedError, load_located_yaml

DOC = """\
# a playbook
id: pb-1
steps:
  - layer: L1
    action: isolate
  - {layer: L2, action: "review", when: 2026-11-24}
limits: {max: 3, ratio: 0.5, flag: yes, none: ~}
"""


def _lines(value: Any) -> Any:
    if isinstance(value, Located):
        return {"line": value.line, "keys": value.key_lines, "items": {k: _lines(v) for k, v in value.items()}}
    if isinstance(value, list):
        return [_lines(item) for item in value]
    return value


def _load(text: str) -> Any:
    return load_located_yaml(text, "pb.yml", LocatedError)


def test_the_fast_parser_gives_what_the_python_parser_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    if located_yaml._FastLoader is None:
        pytest.skip("PyYAML without libyaml: only the Python parser")
    fast = _lines(_load(DOC))
    monkeypatch.setattr(located_yaml, "_FastLoader", None)
    assert _lines(_load(DOC)) == fast
    assert fast["keys"] == {"id": 2, "steps": 3, "limits": 7}
    assert fast["items"]["steps"][1]["line"] == 6
    assert fast["items"]["limits"]["items"] == {"max": 3, "ratio": 0.5, "flag": True, "none": None}


@pytest.mark.parametrize(("text", "message"), [
    ("id: [unclosed\n", "pb.yml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("a: 1\nb: 2\na: 3\n", "pb.yml:3: invalid YAML: duplicate key 'a'"),
], ids=["syntax", "duplicate-key"])
def test_errors_are_worded_by_the_python_parser(text: str, message: str) -> None:
    with pytest.raises(LocatedError) as caught:
        _load(text)
    assert str(caught.value) == message

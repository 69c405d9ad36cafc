"""Spec-conformant UTF-16 modifiers for pySigma's parser.

pySigma 1.5 lacks the `utf16le` alias of the Sigma specification and encodes the `utf16` byte-order mark as
UTF-8 (EF BB BF) instead of FF FE, and refuses non-ASCII text for `wide`. These replacements carry the exact
encoded bytes in the string they return, so a following `base64`/`base64offset` modifier (which encodes
`bytes(value)`) sees the real UTF-16 bytes. `install()` registers them; it is idempotent and runs before any
rule is parsed (cold path only).
"""

from __future__ import annotations

from typing import ClassVar

from sigma import modifiers
from sigma.exceptions import SigmaValueError
from sigma.types import SigmaString


class EncodedString(SigmaString):
    """A SigmaString whose bytes are given (latin-1 text of the same length for string operations)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        text = data.decode("latin-1")
        self.s = (text,)  # type: ignore[assignment]
        self.original = text
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data


class _Utf16Modifier(modifiers.SigmaValueModifier[SigmaString, SigmaString]):
    encoding: ClassVar[str] = "utf-16-le"
    bom: ClassVar[bytes] = b""

    def modify(self, val: SigmaString) -> SigmaString:
        if val.contains_special():
            raise SigmaValueError(
                f"{type(self).__name__}: wildcards cannot be encoded as UTF-16", source=self.source
            )
        return EncodedString(self.bom + str(val).encode(self.encoding))


class Utf16LeModifier(_Utf16Modifier):
    """`utf16le` / `wide`: UTF-16 little endian."""


class Utf16BeModifier(_Utf16Modifier):
    """`utf16be`: UTF-16 big endian."""

    encoding = "utf-16-be"


class Utf16BomModifier(_Utf16Modifier):
    """`utf16`: UTF-16 little endian with its byte-order mark (FF FE)."""

    bom = b"\xff\xfe"


def install() -> None:
    mapping = modifiers.modifier_mapping
    mapping["utf16le"] = Utf16LeModifier
    mapping["wide"] = Utf16LeModifier
    mapping["utf16be"] = Utf16BeModifier
    mapping["utf16"] = Utf16BomModifier
    for name in ("utf16le", "wide", "utf16be", "utf16"):
        modifiers.reverse_modifier_mapping[mapping[name].__name__] = name

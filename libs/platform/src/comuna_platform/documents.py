"""Identity documents as people write them, reduced to one canonical form.

The census never stores a document number: it stores keyed hashes of the canonical form, and
the voter roll keys its entries by a function of it. Both sides (identity at import, a voting
table in consultations) must therefore reduce what a person or a file wrote to exactly the
same string. `V-12.345.678`, `v12345678`, `V 12 345 678` and `Ｖ１２３４５６７８` (full-width) are
one document: `V:12345678`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from comuna_platform.errors import InvalidInput


class DocumentType(StrEnum):
    # Cédula de identidad of a Venezuelan national.
    V = "V"
    # Cédula of a foreign resident.
    E = "E"
    # Passport (residents without a cédula).
    P = "P"


# Separators people and registers put inside numbers: dots, dashes, spaces, slashes.
_SEPARATORS = re.compile(r"[\s.\-/_]+")
_CEDULA = re.compile(r"^([VE])?0*(\d{1,10})$")
_PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")


@dataclass(frozen=True, slots=True)
class Document:
    type: DocumentType
    number: str

    @property
    def canonical(self) -> str:
        """`TYPE:NUMBER`, the exact string every keyed hash is computed over."""
        return f"{self.type}:{self.number}"


def invalid_document(reason: str = "the document number is not valid") -> InvalidInput:
    # Never echo the number: error messages end up in logs and clients' screens.
    return InvalidInput(reason, code="document_invalid")


def normalise_document(raw: str, document_type: str | None = None) -> Document:
    """The canonical document for `raw`, optionally typed apart (`document_type`).

    Cédulas (V, E): the letter may lead the number (`V-12.345.678`) or come separately; digits
    only, leading zeros dropped (registers disagree on padding). Without any letter a cédula is
    V. Passports: letters and digits, upper-cased. NFKC first, so full-width and other
    compatibility forms of digits and letters count as the plain ones.
    """
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()
    declared = _SEPARATORS.sub("", unicodedata.normalize("NFKC", document_type or "")).upper()
    if declared and declared not in DocumentType.__members__:
        raise invalid_document("the document type must be V, E or P")
    if declared == DocumentType.P:
        if not _PASSPORT.match(text):
            raise invalid_document()
        return Document(DocumentType.P, text)
    match = _CEDULA.match(text)
    if match is None:
        raise invalid_document()
    letter, digits = match.groups()
    if letter and declared and letter != declared:
        raise invalid_document("the document's letter contradicts its type")
    number = digits.lstrip("0")
    if not number:
        raise invalid_document()
    return Document(DocumentType(letter or declared or DocumentType.V), number)

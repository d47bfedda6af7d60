"""Money as the public reads it: integer minor units turned into exact decimal text of major
units, by the currency's ISO 4217 minor digits. Every money path stores and moves integers;
this is for open data (exports, OC4IDS), never for arithmetic."""

from __future__ import annotations

# ISO 4217 minor units where they are not 2 (https://www.iso.org/iso-4217-currency-codes.html).
_NO_MINOR = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DIGITS = "BHD IQD JOD KWD LYD OMR TND"
_MINOR_DIGITS: dict[str, int] = {
    **dict.fromkeys(_NO_MINOR.split(), 0),
    **dict.fromkeys(_THREE_DIGITS.split(), 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency, 2)


def major_units(amount_minor: int, currency: str) -> str:
    """The amount in major units, exactly, as decimal text: 1234 USD -> `12.34`, 5 JPY -> `5`."""
    digits = minor_digits(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"

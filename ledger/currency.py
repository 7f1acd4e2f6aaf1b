"""ISO 4217 currencies, their minor-unit exponents and the formatting of minor units.

A leaf: it imports nothing from the ledger, so errors and money can both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Active ISO 4217 currency codes and their minor-unit exponents. Codes without a minor unit
# in the standard (precious metals, XDR, test and "no currency" codes) are left out.
_CODES_BY_EXPONENT = {
    2: "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG",
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {code: exp for exp, codes in _CODES_BY_EXPONENT.items() for code in codes.split()}
)


def format_amount(minor: int, currency: str) -> str:
    """Minor units of a known currency as a decimal string: 7000 EUR -> "70.00"."""
    decimals = CURRENCY_EXPONENTS[currency]
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(decimals + 1, "0")
    if decimals == 0:
        return sign + digits
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"

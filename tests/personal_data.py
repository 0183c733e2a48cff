"""The test customers' personal data, and how the session-wide guard (``tests/secret_guard.py``)
recognises it in a log record, however it was spelt.

- **e-mail addresses** at the domains the tests' customers use, those reserved for documentation
  (``example.com``, ``*.example``...) and their foreign cousins: any local part, any case;
- **phone numbers**: the national numbers of the test customers' phones, with any separators
  between the digits (``+48 601 234 567``, ``601-234-567``, ``48601234567``);
- **names** the tests give their customers, as whole words, any case;
- **IP addresses** of the documentation ranges (RFC 5737), which the tests use for every client.
"""

from __future__ import annotations

import re

EMAIL = "Jane.Doe@Example.com"
PHONE = "+48 601 234 567"
NAME = "Jane Doe"
CLIENT_IP = "203.0.113.7"

EMAIL_DOMAINS = (
    r"(?:[a-z0-9-]+\.)*(?:example(?:\.(?:com|org|net))?|exemple\.fr|przyklad\.pl|gmail\.com|b\.co)"
)
NATIONAL_NUMBERS = ("601234567", "2079460958", "8444124653", "6505551212", "4155550100", "612345678")
"""The test phones' numbers without their country codes: Poland's, the UK's, Meta's own examples."""
NAMES = (NAME, "Ewa Kowalska", "Ewa")
DOCUMENTATION_IPS = r"(?:192\.0\.2|198\.51\.100|203\.0\.113)\.[0-9]{1,3}"


def _digits_with_separators(number: str) -> str:
    return r"[\s().-]*".join(number)


PATTERNS: dict[str, re.Pattern[str]] = {
    "e-mail": re.compile(rf"[a-z0-9._%+-]+@{EMAIL_DOMAINS}\b", re.IGNORECASE),
    "phone": re.compile("|".join(_digits_with_separators(number) for number in NATIONAL_NUMBERS)),
    "name": re.compile("|".join(rf"\b{re.escape(name)}\b" for name in NAMES), re.IGNORECASE),
    "IP": re.compile(rf"(?<![0-9.]){DOCUMENTATION_IPS}(?![0-9])"),
}


def personal_data_in(text: str, patterns: dict[str, re.Pattern[str]] = PATTERNS) -> list[str]:
    """``kind: value`` of each piece of personal data in ``text``."""
    return [f"{kind}: {match.group()}"
            for kind, pattern in patterns.items() for match in pattern.finditer(text)]

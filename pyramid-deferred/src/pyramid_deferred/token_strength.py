"""How hard a configured access token is to guess, estimated in bits, so that start-up can refuse a
weak one (``aaaaaaaaaaaaaaaa``, ``password12345678``) before it protects anything.

The estimate is the cheapest way to spell the token out of pieces an attacker tries first, in the
manner of zxcvbn, kept small: each character costs the bits of the alphabet the token draws from
(lower case, upper case, digits, other printable characters), except where a cheaper piece covers
a stretch of it: a run of one character (``aaaa``), a run up or down the alphabet or a keyboard row
(``1234``, ``qwerty``), a repeat of the stretch just before it (``abcabc``), or a common word, in
any case and with the usual digit-for-letter swaps (``Passw0rd``). A random token (what
``secrets.token_urlsafe`` makes) has no such stretches, and its estimate is its length times the
alphabet's bits.
"""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Callable

MIN_TOKEN_BITS = 80
"""About 14 random letters and digits: with the dashboard's throttling, far beyond any guessing."""
MIN_RUN = 3
"""Shorter stretches are priced per character: every random string has a few."""
MAX_PERIOD = 64
"""Longest stretch whose repeat is looked for (a repeat of a longer one is priced per character)."""

KEYBOARD_ROWS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./")
COMMON_WORDS = frozenset({
    "access", "admin", "administrator", "baseball", "changeme", "dashboard", "default", "deferred",
    "dragon", "example", "football", "guest", "hello", "iloveyou", "letmein", "login", "master",
    "metrics", "monkey", "pass", "passwd", "password", "princess", "private", "prometheus",
    "pyramid", "qwerty", "root", "secret", "shop", "sunshine", "super", "test", "token", "trustno",
    "welcome",
})
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                      "!": "i"})
ALPHABETS = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
PRINTABLE_OTHERS = 33
"""Printable ASCII that is neither a letter nor a digit, the space included."""


def alphabet_size(token: str) -> int:
    """How many characters the token's classes hold together (26, 36, 62, 95...)."""
    size = sum(len(alphabet) for alphabet in ALPHABETS if any(c in alphabet for c in token))
    if any(not c.isalnum() for c in token):
        size += PRINTABLE_OTHERS
    return max(size, 1)


def estimated_bits(token: str) -> float:
    """The bits of the cheapest spelling of ``token`` (see the module's docstring)."""
    per_char = math.log2(alphabet_size(token))
    folded = token.lower().translate(LEET)
    word_bits = math.log2(len(COMMON_WORDS))
    best = [0.0] + [math.inf] * len(token)
    for start in range(len(token)):
        here = best[start]
        best[start + 1] = min(best[start + 1], here + per_char)
        for length, cost in _cheap_pieces(token, folded, start, per_char, word_bits):
            end = start + length
            best[end] = min(best[end], here + cost)
    return best[len(token)]


def _cheap_pieces(
    token: str, folded: str, start: int, per_char: float, word_bits: float
) -> list[tuple[int, float]]:
    """(length, bits) of each cheap piece that starts at ``start``; each kind is extended only while
    it holds, so that a random token costs about one comparison per character and kind."""
    pieces: list[tuple[int, float]] = []
    for length in (_run_length(token, start, _same), _run_length(token.lower(), start, _in_sequence)):
        if length >= MIN_RUN:
            pieces.append((length, per_char + math.log2(length) + 1))
    for period in range(1, min(start, MAX_PERIOD) + 1):  # a copy of what came ``period`` before
        length = _common_length(token, start - period, start)
        if length >= MIN_RUN:
            pieces.append((length, math.log2(period) + math.log2(length) + 1))
    for word in COMMON_WORDS:
        if folded.startswith(word, start):
            piece = token[start : start + len(word)]
            bits = word_bits + (piece != piece.lower()) + (piece.lower() != word)
            pieces.append((len(word), bits))
    return pieces


def _common_length(text: str, earlier: int, start: int) -> int:
    """How many characters from ``start`` repeat those from ``earlier`` (a binary search over
    slice comparisons: a long repeated token stays cheap to check)."""
    low, high = 0, len(text) - start
    while low < high:
        middle = (low + high + 1) // 2
        if text[start : start + middle] == text[earlier : earlier + middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _run_length(text: str, start: int, continues: Callable[[str], bool]) -> int:
    """How long the stretch from ``start`` keeps the property (at least 1)."""
    end = start + 2
    while end <= len(text) and continues(text[start:end]):
        end += 1
    return end - 1 - start


def _same(piece: str) -> bool:
    return piece[-1] == piece[0]


def _in_sequence(piece: str) -> bool:
    """Up or down the code points (``abc``, ``987``) or along a keyboard row (``qwe``, ``lkj``)."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(piece)}
    if steps in ({1}, {-1}):
        return True
    return any(piece in row or piece in row[::-1] for row in KEYBOARD_ROWS)


def is_strong_token(token: str) -> bool:
    return estimated_bits(token) >= MIN_TOKEN_BITS

"""KOSTAT administrative codes and their hierarchy by prefix.

The KOSTAT (Statistics Korea) census boundary codes nest by prefix: a 2-digit province
(시·도, ``'11'`` Seoul), a 5-digit municipality (시·군·구, ``'11030'`` 용산구) and a 7-digit
neighbourhood (읍·면·동, ``'1103064'`` 이촌2동). The parent of a code is its prefix one level up,
so the hierarchy needs no table.

>>> admin_level("1103064"), parent_code("1103064"), parent_code("11030"), parent_code("11")
(3, '11030', '11', None)
>>> admin_chain("1103064")
('1103064', '11030', '11')
>>> is_admin_code("hangang-riverside-central")
False
"""

from __future__ import annotations

__all__ = ["CODE_LENGTHS", "admin_chain", "admin_level", "is_admin_code", "parent_code"]

#: Code length per administrative level: 1 province, 2 municipality, 3 neighbourhood.
CODE_LENGTHS: dict[int, int] = {1: 2, 2: 5, 3: 7}
_LEVEL_OF_LENGTH = {n: level for level, n in CODE_LENGTHS.items()}


def is_admin_code(zone_id: str) -> bool:
    """True for a KOSTAT code (all digits, 2, 5 or 7 long); custom zone ids are slugs."""
    return zone_id.isdigit() and zone_id.isascii() and len(zone_id) in _LEVEL_OF_LENGTH


def admin_level(code: str) -> int:
    """1 province, 2 municipality, 3 neighbourhood; ``ValueError`` for anything else."""
    if not is_admin_code(code):
        raise ValueError(f"not a KOSTAT administrative code: {code!r}")
    return _LEVEL_OF_LENGTH[len(code)]


def parent_code(code: str) -> str | None:
    """The enclosing administrative code, or None for a province."""
    level = admin_level(code)
    return None if level == 1 else code[: CODE_LENGTHS[level - 1]]


def admin_chain(code: str) -> tuple[str, ...]:
    """The code and its ancestors, finest first."""
    chain = [code]
    parent = parent_code(code)
    while parent is not None:
        chain.append(parent)
        parent = parent_code(parent)
    return tuple(chain)

"""Vertebra label numbering: VerSe and TotalSegmentator v2, level names, anatomical order, norms.

Two numberings are common: VerSe (1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13) and TotalSegmentator
v2 "total" (25 sacrum, 26 S1, 27 L5 ... 31 L1, 32 T12 ... 43 T1, 44 C7 ... 50 C1). They overlap in
1..28, so ``auto`` picks the one under which every present label is a vertebra and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMES = ("auto", "verse", "totalseg")
OFFSETS = (-2, -1, 1, 2)  # the neighbouring levels a reference is built from (here: no torch import needed)

_CERVICAL = [f"C{i}" for i in range(1, 8)]
_THORACIC = [f"T{i}" for i in range(1, 13)]
_LUMBAR = [f"L{i}" for i in range(1, 7)]

VERSE: dict[int, str] = {i + 1: n for i, n in enumerate(_CERVICAL + _THORACIC + _LUMBAR)}
VERSE[28] = "T13"

# TotalSegmentator v2: 26 S1, 27 L5, 28 L4, 29 L3, 30 L2, 31 L1, 32 T12 ... 43 T1, 44 C7 ... 50 C1.
TOTALSEG: dict[int, str] = {26: "S1"}
for _k, _name in enumerate(["L5", "L4", "L3", "L2", "L1"] + _THORACIC[::-1] + _CERVICAL[::-1]):
    TOTALSEG[27 + _k] = _name
TOTALSEG_SACRUM = 25


def order(level: str) -> float:
    """Position along the spine from the top (C1 = 0); T13 sits between T12 and L1, S1 below L6."""
    if level == "T13":
        return 18.5
    if level == "S1":
        return 25.0
    seq = _CERVICAL + _THORACIC + _LUMBAR
    return float(seq.index(level))


def measurable(level: str) -> bool:
    """C1 has no body, C2's carries the dens, the sacrum is not a vertebral body in this sense."""
    return level not in ("C1", "C2", "S1")


# Approximate adult vertebral body heights (anterior, middle, posterior; mm), a smooth population
# curve after published morphometry (Panjabi et al. 1991/1992, Gilsanz and others). Used to scale a
# neighbour's height map to this level and, flagged, as the reference when a level has no neighbours.
_NORM_LEVELS = ["C3", "C7", "T1", "T6", "T10", "T12", "L1", "L3", "L5"]
_NORM_AMP = {
    "anterior": [13.0, 13.5, 15.0, 17.5, 20.5, 23.0, 24.5, 26.5, 27.0],
    "middle": [12.5, 13.0, 14.5, 17.0, 20.0, 22.5, 24.0, 25.5, 25.0],
    "posterior": [13.0, 14.0, 16.0, 19.0, 22.0, 24.0, 25.5, 26.0, 24.5],
}


def norm_heights(level: str) -> dict[str, float]:
    """Population section heights for a level, interpolated along the spine."""
    import numpy as np

    x = [order(n) for n in _NORM_LEVELS]
    return {k: float(np.interp(order(level), x, v)) for k, v in _NORM_AMP.items()}


def norm_height(level: str) -> float:
    """One number per level (mean of the sections): the scale between two levels' height maps."""
    h = norm_heights(level)
    return (h["anterior"] + h["middle"] + h["posterior"]) / 3


@dataclass
class Numbering:
    scheme: str  # "verse" or "totalseg"
    levels: dict[int, str]  # label value -> level name, for vertebra labels only
    ignored: dict[int, str]  # label value -> why it is not measured
    note: str


def _interpret(values: list[int], table: dict[int, str], extra_ok: set[int]) -> tuple[dict[int, str], list[int]]:
    known = {v: table[v] for v in values if v in table}
    unknown = [v for v in values if v not in table and v not in extra_ok]
    return known, unknown


MULTI_ORGAN_ABOVE = 50  # the highest vertebra number of either scheme (TotalSegmentator v2 C1)


def _short(values: list[int], n: int = 12) -> str:
    return ", ".join(map(str, values[:n])) + (f" and {len(values) - n} more" if len(values) > n else "")


def detect(values: list[int], scheme: str = "auto") -> Numbering:
    """Map present label values to level names under ``scheme`` (auto, verse, totalseg)."""
    scheme = str(scheme).lower()
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    values = sorted(int(v) for v in values if int(v) != 0)
    if not values:
        raise ValueError("the label map is empty (no vertebra labels, all voxels are 0)")
    if scheme == "auto":
        verse_known, verse_unknown = _interpret(values, VERSE, set())
        ts_known, ts_unknown = _interpret(values, TOTALSEG, {TOTALSEG_SACRUM})
        if not verse_unknown and verse_known:
            chosen, note = "verse", "auto: every label is a VerSe vertebra number (1-25, 28)"
            if not ts_unknown and ts_known:
                note += "; also valid TotalSegmentator v2 numbers, pass --scheme totalseg if that is meant"
        elif not ts_unknown and ts_known:
            chosen, note = "totalseg", "auto: labels 26-50 are TotalSegmentator v2 vertebrae"
        elif values[-1] > MULTI_ORGAN_ABOVE and (ts_known or verse_known):
            # Labels above 50 exist only in a multi-organ map (TotalSegmentator's "total" task: organs
            # 1-24 and 51-117 around the vertebrae 25-50). Its organs 1-24 would read as VerSe vertebrae
            # (liver as a "C5") and be graded, so such a map is TotalSegmentator whatever the counts, and
            # one without vertebrae 26-50 is refused below rather than read as VerSe.
            chosen = "totalseg"
            note = (f"auto: TotalSegmentator v2 vertebrae (a multi-organ map); labels {_short(ts_unknown)} are "
                    "not vertebrae and are ignored")
        elif ts_known and len(ts_known) >= len(verse_known):
            chosen = "totalseg"
            note = f"auto: TotalSegmentator v2 vertebrae; labels {_short(ts_unknown)} are not vertebrae and are ignored"
        elif verse_known:
            chosen = "verse"
            note = f"auto: VerSe vertebrae; labels {_short(verse_unknown)} are not vertebrae and are ignored"
        else:
            raise ValueError(f"unknown numbering: labels {values[:12]} are neither VerSe (1-25, 28) nor "
                             "TotalSegmentator v2 (26-50) vertebrae")
    else:
        chosen, note = scheme, f"scheme {scheme} chosen by the user"
    table = VERSE if chosen == "verse" else TOTALSEG
    levels = {v: table[v] for v in values if v in table}
    ignored = {v: "not a vertebra label in this numbering" for v in values if v not in table}
    if chosen == "totalseg" and TOTALSEG_SACRUM in ignored:
        ignored[TOTALSEG_SACRUM] = "sacrum"
    if not levels:
        raise ValueError(f"no vertebra labels: none of {values[:12]} is a {chosen} vertebra number")
    return Numbering(chosen, levels, ignored, note)

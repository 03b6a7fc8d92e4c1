"""Genant grade and morphology from section height losses."""

from __future__ import annotations

GRADE_COLOURS = {0: (46, 160, 67), 1: (230, 200, 30), 2: (240, 130, 30), 3: (215, 40, 40)}
BORDERLINE = 0.15
GRADE_NAMES = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}


def genant_grade(loss: float) -> int:
    """Genant semi-quantitative grade from the largest section loss: 0 <20 %, 1 20-25, 2 25-40, 3 >40 %."""
    x = round(float(loss), 6)
    if x < 0.20:
        return 0
    if x < 0.25:
        return 1
    if x <= 0.40:
        return 2
    return 3


def morphology(loss: dict[str, float], grade: int) -> str:
    """wedge = anterior loss, biconcave = middle loss, crush = posterior or whole-body loss.

    Genant's borderline deformity (15-20 %, "grade 0.5") already gets its shape named, with grade 0,
    so a mild fracture measured a point or two low is still called what it looks like.
    A body whose posterior third lost nearly as much as its worst third is a crush (the posterior
    wall went down too); otherwise the worst of anterior and middle names it.
    """
    a, m, p = loss["anterior"], loss["middle"], loss["posterior"]
    worst = max(a, m, p)
    if grade == 0 and worst < BORDERLINE:
        return "normal"
    if p >= 0.7 * worst:
        return "crush"
    return "wedge" if a >= m else "biconcave"

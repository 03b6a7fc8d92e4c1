"""Genant grade and morphology from section height losses."""

from __future__ import annotations

GRADE_COLOURS = {0: (46, 160, 67), 1: (230, 200, 30), 2: (240, 130, 30), 3: (215, 40, 40)}
BORDERLINE = 0.15
# Below the borderline band a shape is still named when the body's own section heights show it:
# 10-15 % loss with the middle this far below the mean of its two walls (biconcave) or the front this
# far below the back (wedge). Loss differences within one body do not carry the neighbour reference's
# whole-level error, so they are far more precise than the losses themselves.
SHAPE_FLOOR = 0.10
BICONCAVE_INDEX = 0.08
WEDGE_INDEX = 0.12
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

    Between SHAPE_FLOOR and BORDERLINE the shape is named only from in-body height differences, as
    the Eastell / McCloskey morphometry does with its wedge (Ha/Hp) and biconcavity (Hm/Hp) ratios:
    the reference's whole-level error (healthy levels differ by a few per cent) shifts all three
    section losses together, so a middle 8 points below its walls is a depressed endplate even when
    the absolute loss reads 12 %. A crush has no in-body signature and needs the borderline band.
    """
    a, m, p = loss["anterior"], loss["middle"], loss["posterior"]
    worst = max(a, m, p)
    if grade == 0 and worst < BORDERLINE:
        if worst < SHAPE_FLOOR:
            return "normal"
        if m - (a + p) / 2 >= BICONCAVE_INDEX and m >= a:
            return "biconcave"
        if a - p >= WEDGE_INDEX and a >= m:
            return "wedge"
        return "normal"
    if p >= 0.7 * worst:
        return "crush"
    return "wedge" if a >= m else "biconcave"

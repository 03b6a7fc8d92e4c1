"""Label numbering of the spine plugin: VerSe vs TotalSegmentator v2, level order, grading rules."""

import pytest

from kintsugi_spine.grading import genant_grade, morphology
from kintsugi_spine.levels import TOTALSEG, VERSE, detect, norm_height, order


def test_tables_match_the_published_numbering():
    assert (VERSE[1], VERSE[7], VERSE[8], VERSE[19], VERSE[20], VERSE[25], VERSE[28]) == (
        "C1", "C7", "T1", "T12", "L1", "L6", "T13")
    assert (TOTALSEG[26], TOTALSEG[27], TOTALSEG[31], TOTALSEG[32], TOTALSEG[43], TOTALSEG[44], TOTALSEG[50]) == (
        "S1", "L5", "L1", "T12", "T1", "C7", "C1")


def test_auto_detection_picks_the_scheme_under_which_all_labels_are_vertebrae():
    assert detect([18, 19, 20, 21]).scheme == "verse"
    ts = detect([25, 26, 27, 28, 29, 30, 31, 32])
    assert ts.scheme == "totalseg"
    assert ts.levels[31] == "L1" and ts.levels[27] == "L5" and ts.ignored[25] == "sacrum"
    # A TotalSegmentator "total" map with organs (1-24) still finds its vertebrae.
    mixed = detect([1, 2, 5, 10, 30, 31, 32, 33, 34])
    assert mixed.scheme == "totalseg" and mixed.levels[31] == "L1"
    # Forcing a scheme reinterprets the same numbers.
    assert detect([20, 21], "verse").levels == {20: "L1", 21: "L2"}
    assert detect([28, 29], "totalseg").levels == {28: "L4", 29: "L3"}


def test_bad_numbering_and_empty_labels_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        detect([])
    with pytest.raises(ValueError, match="unknown numbering"):
        detect([100, 101, 102])
    with pytest.raises(ValueError, match="scheme must be one of"):
        detect([20], "mine")
    with pytest.raises(ValueError, match="no vertebra labels"):
        detect([60, 61], "totalseg")


def test_order_and_norms_run_down_the_spine():
    assert order("T12") < order("T13") < order("L1") < order("L5")
    assert norm_height("C4") < norm_height("T6") < norm_height("L2")


def test_genant_bins_and_morphology():
    assert [genant_grade(x) for x in (0.1, 0.19, 0.2, 0.24, 0.25, 0.4, 0.41)] == [0, 0, 1, 1, 2, 2, 3]
    assert morphology({"anterior": 0.3, "middle": 0.15, "posterior": 0.05}, 2) == "wedge"
    assert morphology({"anterior": 0.12, "middle": 0.3, "posterior": 0.1}, 2) == "biconcave"
    assert morphology({"anterior": 0.33, "middle": 0.34, "posterior": 0.31}, 2) == "crush"
    assert morphology({"anterior": 0.05, "middle": 0.04, "posterior": 0.02}, 0) == "normal"


def test_below_the_borderline_band_only_an_in_body_shape_is_named():
    # 12 % in the middle with intact walls: a depressed endplate, named although grade 0
    assert morphology({"anterior": 0.03, "middle": 0.12, "posterior": 0.02}, 0) == "biconcave"
    assert morphology({"anterior": 0.13, "middle": 0.07, "posterior": 0.0}, 0) == "wedge"
    # the same worst loss spread over the whole body is a reference offset, not a shape
    assert morphology({"anterior": 0.11, "middle": 0.12, "posterior": 0.10}, 0) == "normal"
    assert morphology({"anterior": 0.12, "middle": 0.12, "posterior": 0.12}, 0) == "normal"
    # under 10 % nothing is named, whatever the pattern
    assert morphology({"anterior": -0.05, "middle": 0.09, "posterior": -0.04}, 0) == "normal"


def test_a_multi_organ_map_is_read_as_totalsegmentator():
    """TotalSegmentator's "total" map holds organs 1-24 and 51-117 around vertebrae 25-50. Its organs must
    not be read as VerSe vertebrae (liver = label 5 = "C5") however many of them there are."""
    from kintsugi_spine.levels import detect

    organs = [1, 2, 3, 5, 6, 7, 8, 10, 11, 14, 20, 21, 22, 52, 63, 90, 117]
    n = detect(organs + [31, 32, 33])
    assert n.scheme == "totalseg" and n.levels == {31: "L1", 32: "T12", 33: "T11"}
    assert "multi-organ" in n.note
    assert detect([20, 21, 22]).scheme == "verse"  # a plain VerSe map is still VerSe
    # organs only (no vertebra 26-50, the sacrum 25 at most): refused, not graded as VerSe "vertebrae"
    with pytest.raises(ValueError, match="no vertebra labels"):
        detect(organs + [25])

"""Merge and split of labels: the corrections a reviewer makes, undoable, touching only changed voxels."""

import numpy as np
import pytest

from kintsugi.core import Geometry, LabelInfo, LabelMap
from kintsugi.core.history import UndoStack
from kintsugi.core.label_ops import merge_labels, split_label


def _two_touching_balls(value: int = 3) -> tuple[LabelMap, np.ndarray]:
    z, y, x = np.indices((30, 30, 50))
    a = (z - 15) ** 2 + (y - 15) ** 2 + (x - 14) ** 2 <= 10**2
    b = (z - 15) ** 2 + (y - 15) ** 2 + (x - 34) ** 2 <= 10**2
    data = np.zeros(a.shape, np.uint8)
    data[a | b] = value
    truth = np.zeros(a.shape, np.uint8)
    truth[a & ~b] = 1
    truth[b & ~a] = 2
    return LabelMap(data=data, geometry=Geometry((1.0, 1.0, 1.0)), labels={value: LabelInfo("tooth 3")}), truth


def test_split_touching_objects_at_their_waist_and_undo():
    layer, truth = _two_touching_balls()
    before = layer.data.copy()
    seen = []
    layer.changed.connect(seen.append)
    stack = UndoStack()
    stack.push(split_label(layer, 3))
    assert sorted(layer.present_labels()) == [3, 4]
    assert layer.labels[4].name == "tooth 3 (2)"
    for piece in (3, 4):
        got = layer.data == piece
        overlap = max(np.sum(got & (truth == k)) / np.sum(truth == k) for k in (1, 2))
        assert overlap > 0.95  # each new label is one of the two balls
    assert "data" in seen
    stack.undo()
    assert np.array_equal(layer.data, before) and 4 not in layer.labels
    stack.redo()
    assert sorted(layer.present_labels()) == [3, 4]


def test_split_separate_pieces_keeps_the_largest_under_the_old_value():
    data = np.zeros((10, 10, 30), np.uint16)
    data[2:8, 2:8, 2:12] = 5
    data[2:6, 2:6, 20:24] = 5
    layer = LabelMap(data=data, geometry=Geometry((1.0, 1.0, 1.0)))
    UndoStack().push(split_label(layer, 5))
    assert np.all(layer.data[2:8, 2:8, 2:12] == 5) and np.all(layer.data[2:6, 2:6, 20:24] == 6)


def test_merge_and_its_errors():
    layer, _ = _two_touching_balls()
    stack = UndoStack()
    stack.push(split_label(layer, 3))
    stack.push(merge_labels(layer, 4, 3))
    assert layer.present_labels() == [3]
    stack.undo()
    assert sorted(layer.present_labels()) == [3, 4]
    with pytest.raises(ValueError, match="into itself"):
        merge_labels(layer, 3, 3)
    with pytest.raises(ValueError, match="not in"):
        merge_labels(layer, 9, 3)
    with pytest.raises(ValueError, match="background"):
        merge_labels(layer, 3, 0)
    with pytest.raises(ValueError, match="does not fit"):
        merge_labels(layer, 3, 300)


def test_a_ball_has_no_waist():
    z, y, x = np.indices((20, 20, 20))
    data = (((z - 10) ** 2 + (y - 10) ** 2 + (x - 10) ** 2) <= 49).astype(np.uint8)
    layer = LabelMap(data=data, geometry=Geometry((1.0, 1.0, 1.0)))
    with pytest.raises(ValueError):
        split_label(layer, 1)

"""Which open layers count as few-shot examples: the pairing the Adapt button and scripts share."""

import numpy as np

from kintsugi.core import Image2D
from kintsugi_crack.examples import find_examples, support_values


def _photo(name: str, shape=(40, 60)) -> Image2D:
    return Image2D(name=name, data=np.full((*shape, 3), 128, np.uint8))


def _mask(name: str, shape=(40, 60), painted: bool = True) -> Image2D:
    data = np.zeros(shape, np.uint8)
    if painted:
        data[shape[0] // 2, 5:50] = 255
    return Image2D(name=name, data=data, modality="mask")


def test_masks_pair_with_their_photo_by_name_and_size():
    a, b, target = _photo("wall"), _photo("wall2"), _photo("bridge")
    layers = [a, b, target, _mask("wall_mask"), _mask("wall_2_mask"), _mask("wall2 crack mask"),
              _mask("bridge_mask"), _mask("other_mask"), _mask("wall_x_mask"), _mask("wall2_mask", shape=(10, 10))]
    found = find_examples(layers, target=target)
    assert [(e.photo.name, e.mask.name) for e in found] == [
        ("wall", "wall_mask"), ("wall", "wall_2_mask"), ("wall2", "wall2 crack mask")]
    assert found[0].crack_pixels == 45
    values = support_values(found)
    assert values["support_images"] == [a, a, b] and [m.name for m in values["support_masks"]] == [
        "wall_mask", "wall_2_mask", "wall2 crack mask"]


def test_the_target_photo_is_not_its_own_example():
    wall = _photo("wall")
    assert find_examples([wall, _mask("wall_mask")], target=wall) == []
    assert len(find_examples([wall, _mask("wall_mask")])) == 1


def test_a_mask_belongs_to_the_photo_it_is_named_after_not_to_a_longer_name():
    from kintsugi_crack.examples import belongs

    wall, wall2 = _photo("wall"), _photo("wall2")
    assert belongs(_mask("wall_mask"), wall) and not belongs(_mask("wall_mask"), wall2)
    assert belongs(_mask("wall2_mask"), wall2) and not belongs(_mask("wall2_mask"), wall)
    assert not belongs(_mask("wall_mask", shape=(10, 10)), wall)

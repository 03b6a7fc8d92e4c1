"""The Cracks panel: examples painted in the window adapt the model to the site, in a worker."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _panel(window):
    from kintsugi_crack.widgets import AdaptPanel

    window.tasks_panel.select_task("crack.segment_layers")
    panel = window.tasks_panel.form
    assert isinstance(panel, AdaptPanel)
    return panel


def _choose_image(panel, name: str) -> None:
    (image,) = [w for w in panel.form.inputs if w.spec.name == "image"]
    image.combo.setCurrentIndex(image.combo.findText(name))


def test_adapt_uses_the_examples_painted_in_the_window(window, qtbot):
    window.open_sample("crack")  # crack_00_lowlight, crack_00 and its mask crack_00_mask
    panel = _panel(window)
    _choose_image(panel, "crack_00_lowlight")
    assert panel.list.count() == 1 and "crack_00_mask" in panel.list.item(0).text()
    _choose_image(panel, "crack_00")  # a photo is not its own example
    assert panel.list.count() == 0 and not panel.adapt_button.isEnabled()
    _choose_image(panel, "crack_00_lowlight")

    seen, submit = [], panel._submit
    panel._submit = lambda values, device: (seen.append(values), submit(values, device))[1]
    panel.adapt()
    assert [m.name for m in seen[0]["support_masks"]] == ["crack_00_mask"]
    assert [p.name for p in seen[0]["support_images"]] == ["crack_00"] and seen[0]["fine_tune"] is True
    qtbot.waitUntil(lambda: "crack_00_lowlight crack mask" in window.scene, timeout=120_000)
    mask = window.scene["crack_00_lowlight crack mask"]
    assert mask.data.shape == window.scene["crack_00_lowlight"].data.shape[:2] and mask.data.max() == 255


def test_an_unpainted_example_is_refused_with_a_message(window, qtbot):
    window.open_sample("crack")
    panel = _panel(window)
    _choose_image(panel, "crack_00")
    window.scene.select([window.scene["crack_00_lowlight"]])
    panel.new_example()  # the panel asks its window for New mask: crack_00_lowlight_mask, empty
    mask = window.scene["crack_00_lowlight_mask"]
    assert window.label_mode.currentText() == "paint" and "paint the cracks" in panel.message.text()
    assert any("crack_00_lowlight_mask" in panel.list.item(i).text() for i in range(panel.list.count()))
    panel.adapt()
    assert "nothing painted yet in crack_00_lowlight_mask" in panel.message.text()
    mask.data[10, 10:40] = 255
    submitted = []
    panel._submit = lambda values, device: submitted.append(values)
    panel.adapt()
    assert [m.name for m in submitted[0]["support_masks"]] == ["crack_00_lowlight_mask"]
    assert np.count_nonzero(submitted[0]["support_masks"][0].data) == 30


def test_the_analysed_photo_is_shown_with_its_own_layers_only(window):
    window.open_sample("crack")
    panel = _panel(window)
    _choose_image(panel, "crack_00_lowlight")
    panel.show_target()
    shown = {x.name for x in window.scene if x.visible and x.kind == "image"}
    assert shown == {"crack_00_lowlight"}  # the other photo and its mask are hidden

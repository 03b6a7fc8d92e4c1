import numpy as np
import pytest

from kintsugi.core import Scene, Volume


def vol(name: str) -> Volume:
    return Volume(name=name, data=np.zeros((2, 2, 2)))


def test_scene_add_remove_events_and_unique_names():
    s = Scene()
    events = []
    s.layer_added.connect(lambda layer, i: events.append(("added", layer.name, i)))
    s.layer_removed.connect(lambda layer, i: events.append(("removed", layer.name, i)))
    s.layer_changed.connect(lambda layer, what: events.append(("changed", layer.name, what)))
    a, b = s.add(vol("ct")), s.add(vol("ct"))
    assert (a.name, b.name) == ("ct", "ct [2]")
    b.set(opacity=0.5)
    s.remove("ct")
    a.set(opacity=0.2)  # removed layers no longer reach the scene
    assert events == [("added", "ct", 0), ("added", "ct [2]", 1), ("changed", "ct [2]", "opacity"),
                      ("removed", "ct", 0)]
    assert len(s) == 1 and s[0] is b


def test_selection_follows_removal():
    s = Scene()
    a, b = s.add(vol("a")), s.add(vol("b"))
    seen = []
    s.selection_changed.connect(seen.append)
    s.select([a, b])
    s.remove(a)
    assert s.selection == [b]
    assert seen[-1] == [b]
    with pytest.raises(ValueError):
        s.select(vol("stranger"))
    with pytest.raises(TypeError):
        s.add("not a layer")  # type: ignore[arg-type]

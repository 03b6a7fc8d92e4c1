import numpy as np

from kintsugi.core import Scene, Volume
from kintsugi.core.history import UndoStack, remove_layer, set_attributes


def test_delete_rename_and_opacity_undo_redo():
    scene = Scene()
    a = scene.add(Volume(name="a", data=np.zeros((2, 2, 2))))
    b = scene.add(Volume(name="b", data=np.zeros((2, 2, 2))))
    stack = UndoStack()
    stack.push(set_attributes(b, name="renamed"))
    stack.push(set_attributes(a, opacity=0.25))
    stack.push(remove_layer(scene, a))
    assert scene.layers == [b] and b.name == "renamed"
    assert stack.undo() == "delete 'a'"
    assert scene.layers == [a, b]  # back in its place, the same object
    stack.undo()
    assert a.opacity == 1.0
    stack.undo()
    assert b.name == "b" and not stack.can_undo()
    stack.redo()
    assert b.name == "renamed" and stack.can_redo()
    stack.push(set_attributes(b, visible=False))
    assert not stack.can_redo()  # a new edit drops the redo branch


def test_limit_keeps_the_newest():
    scene = Scene()
    v = scene.add(Volume(name="v", data=np.zeros((2, 2, 2))))
    stack = UndoStack(limit=3)
    for op in (0.1, 0.2, 0.3, 0.4):
        stack.push(set_attributes(v, opacity=op))
    while stack.undo():
        pass
    assert v.opacity == 0.1

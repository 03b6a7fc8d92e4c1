"""Views of the Scene: 3D (pyvistaqt) and slice/image panes (napari)."""

"""A plugin's own panel widget: constructed as Class(task, scene, submit)."""

from qtpy.QtWidgets import QPushButton, QVBoxLayout, QWidget


class QuickBurn(QWidget):
    def __init__(self, task, scene, submit, parent=None):
        super().__init__(parent)
        self.button = QPushButton("Burn 0.2 s", self)
        self.button.clicked.connect(lambda: submit({"seconds": 0.2}, "cpu"))
        QVBoxLayout(self).addWidget(self.button)

"""Kintsugi's built-in general tools: surfaces from label maps, thresholding.

Registered through the ``kintsugi.plugins`` entry point like any third-party plugin; read it as the
smallest complete example of the plugin contract.
"""

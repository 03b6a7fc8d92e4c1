"""The ``kintsugi`` command. Headless except ``kintsugi gui``, which imports Qt lazily."""

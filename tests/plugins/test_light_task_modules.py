"""Reading a task's signature (the Tasks form, `kintsugi run --help`) must not import torch.

The GUI builds the first task's form while the window starts; a plugin whose task module imports torch
at the top adds about a second to every start. Models are imported where they run.
"""

import subprocess
import sys

import pytest

from kintsugi.plugins import get_registry


@pytest.mark.parametrize("task_id", sorted(get_registry().tasks))
def test_task_signature_loads_without_torch(task_id):
    code = ("import sys; from kintsugi.plugins import get_registry; "
            f"get_registry().tasks[{task_id!r}].signature; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "False", f"{task_id}: reading its signature imported torch"

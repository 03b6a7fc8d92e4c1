"""The plugin contract: everything a plugin author imports comes from here (and layer types from
``kintsugi.core``).

A plugin is a package with a ``kintsugi.toml`` manifest, registered under the entry point group
``kintsugi.plugins``; a task is a typed function. See docs/plugin-authoring.md.
"""

from kintsugi.plugins.execute import TaskInputError, run_task
from kintsugi.plugins.manifest import ManifestError, PluginManifest, TaskInfo
from kintsugi.plugins.params import Input, Param
from kintsugi.plugins.progress import NO_PROGRESS, Cancelled, Progress
from kintsugi.plugins.registry import Registry, discover, get_registry
from kintsugi.plugins.result import TaskResult, write_result
from kintsugi.plugins.weights import NO_WEIGHTS, Weights, WeightsError, sha256_of

__all__ = [
    "NO_PROGRESS",
    "NO_WEIGHTS",
    "Cancelled",
    "Input",
    "ManifestError",
    "Param",
    "PluginManifest",
    "Progress",
    "Registry",
    "TaskInfo",
    "TaskInputError",
    "TaskResult",
    "Weights",
    "WeightsError",
    "discover",
    "get_registry",
    "run_task",
    "sha256_of",
    "write_result",
]

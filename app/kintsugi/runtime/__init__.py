"""Background jobs: tasks run in warm worker processes, with progress, cancel and crash isolation.

    from kintsugi.runtime import JobManager, JobSpec

    with JobManager() as jobs:
        job = jobs.run(JobSpec("my_plugin.tasks:segment", {"image": image}, device="auto"))
        job.state, job.result, job.device

Modules: ``jobs`` (JobSpec, Job, JobState), ``manager`` (JobManager, run_job), ``process`` (the parent's
end of a worker), ``worker`` (the worker's loop), ``transport`` (big arrays through shared memory),
``device`` (resolve_device). Nothing here imports Qt or, in the parent, torch.
"""

from kintsugi.runtime.device import resolve_device
from kintsugi.runtime.jobs import Job, JobSpec, JobState
from kintsugi.runtime.manager import JobManager, default_manager, run_job

__all__ = ["Job", "JobManager", "JobSpec", "JobState", "default_manager", "resolve_device", "run_job"]

"""The run layer: between the engine and every front end (the CLI, the leaderboard, notebooks, a web app).

It turns "this model, this recipe, these overrides, this dataset" (or "resume this run") into a final
config, a model and data (:mod:`cnnzoo.run.setup`), trains it where the user asked with its run directory
(:mod:`cnnzoo.run.training`), and owns that directory's layout (:mod:`cnnzoo.run.directory`).
"""

from cnnzoo.base.rundirs import new_run_dir, resolve_run_dir
from cnnzoo.run.directory import RunDirectory
from cnnzoo.run.environment import cpu_model, environment_info
from cnnzoo.run.setup import RESUMABLE, Run, build_model, load_data, make_config, new_run, open_run, resume_run
from cnnzoo.run.training import Outcome, Training, start_training

__all__ = [
    "RESUMABLE",
    "Outcome",
    "Run",
    "RunDirectory",
    "Training",
    "build_model",
    "cpu_model",
    "environment_info",
    "load_data",
    "make_config",
    "new_run",
    "new_run_dir",
    "open_run",
    "resolve_run_dir",
    "resume_run",
    "start_training",
]

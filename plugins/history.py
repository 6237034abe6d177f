"""Record every finished run in the history database (DESIGN §3: history is an observer plugin).

The run's ``run.json`` says where (``history``: None for the default place, '' for none);
an interrupted run is recorded once it is resumed to the end. ``--disable history`` turns
recording off for a run as a whole.
"""

from optbench import hookimpl


@hookimpl
def optbench_run_finished(run_dir, rows):
    from optbench.history import record_run_dir

    record_run_dir(run_dir, rows)

"""The resample stage (thesis 3.4.2): where a trained model errs most, new parameter sets to solve and train on.

`write_selection` is the checkpoint `select_high_error`, `merge_solved` the rule `resampled_set`,
`compare_error_maps` and `resampling_summary` the rule `error_maps`.
"""

from .high_error import (
    compare_error_maps,
    error_map,
    merge_solved,
    new_parameter_sets,
    resampling_summary,
    rollout_errors,
    sample_around,
    select_high_error,
    state_errors,
    trajectory_errors,
    write_selection,
)

__all__ = [
    "compare_error_maps",
    "error_map",
    "merge_solved",
    "new_parameter_sets",
    "resampling_summary",
    "rollout_errors",
    "sample_around",
    "select_high_error",
    "state_errors",
    "trajectory_errors",
    "write_selection",
]

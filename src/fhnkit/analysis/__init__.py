"""Analysis and report: the summary table, the statistics of SPEC.md section 7, every figure and table page.

The workflow's analysis rules call these by the name of what they make: `build_summary` (rule
`summarise`), `analysis_tables` and `write_table` (`analyse`), `accuracy_vs_neurons`,
`error_vs_inference` and `iteration_cost` (`figures`), `study_training_curves`, `study_predictions`,
`study_cuts`, `rollout`, `error_maps`, `benchmark_table`, `cost_sweep_tables`, ...
Errors are the dimensionless validation error of eq. 3.3; times are seconds.
"""

import matplotlib

matplotlib.use("Agg")  # figures are only written to files: no display, before any pyplot import

from . import plotting  # noqa: E402
from .accuracy_figures import accuracy_vs_neurons, error_maps, rollout  # noqa: E402
from .bench_table import BENCHMARK_CAPTION, BENCHMARK_COLUMNS, PAGE_COLUMNS, benchmark_rows, benchmark_table  # noqa: E402
from .cost_anova import (  # noqa: E402
    SPEEDUP_FORMULA,
    TIME_FORMULA,
    backend_label,
    compiled_builds,
    cost_anova,
    cost_sweep_tables,
    write_timings_page,
)
from .cost_figures import compile_speedup, error_vs_inference, inference_vs_neurons  # noqa: E402
from .error_cuts import CUT_COLUMNS, cut_errors, cut_models, cut_parameters, error_cuts_figure, study_cuts  # noqa: E402
from .plotting import failed_note, message_figure, variant  # noqa: E402
from .prediction_figures import (  # noqa: E402
    high_error,
    predictions,
    select_prediction_models,
    study_predictions,
    unit_errors,
    validation_predictions,
)
from .stats import (  # noqa: E402
    ANOVA_COLUMNS,
    NOT_ESTIMABLE,
    TTEST_COLUMNS,
    anova_table,
    is_estimable,
    pinn_vs_ddnn_ttest,
    shape_anova,
    shape_variance,
    technique_anova,
    technique_formula,
)
from .summary import SUMMARY_COLUMNS, build_summary, failed_models, successful, time_domains  # noqa: E402
from .tables import analysis_tables, write_config_page, write_table  # noqa: E402
from .training_figures import iteration_cost, select_curve_models, study_training_curves, training_curves  # noqa: E402

__all__ = [
    "ANOVA_COLUMNS",
    "BENCHMARK_CAPTION",
    "BENCHMARK_COLUMNS",
    "CUT_COLUMNS",
    "NOT_ESTIMABLE",
    "PAGE_COLUMNS",
    "SPEEDUP_FORMULA",
    "SUMMARY_COLUMNS",
    "TIME_FORMULA",
    "TTEST_COLUMNS",
    "accuracy_vs_neurons",
    "analysis_tables",
    "anova_table",
    "backend_label",
    "benchmark_rows",
    "benchmark_table",
    "build_summary",
    "compile_speedup",
    "compiled_builds",
    "cost_anova",
    "cost_sweep_tables",
    "cut_errors",
    "cut_models",
    "cut_parameters",
    "error_cuts_figure",
    "error_maps",
    "error_vs_inference",
    "failed_models",
    "failed_note",
    "high_error",
    "inference_vs_neurons",
    "is_estimable",
    "iteration_cost",
    "message_figure",
    "pinn_vs_ddnn_ttest",
    "plotting",
    "predictions",
    "rollout",
    "select_curve_models",
    "select_prediction_models",
    "shape_anova",
    "shape_variance",
    "study_cuts",
    "study_predictions",
    "study_training_curves",
    "successful",
    "technique_anova",
    "technique_formula",
    "time_domains",
    "training_curves",
    "unit_errors",
    "validation_predictions",
    "variant",
    "write_config_page",
    "write_table",
    "write_timings_page",
]

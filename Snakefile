# fhnkit: FitzHugh-Nagumo solutions -> trained surrogates -> benchmarks -> analysis -> report.
#
#   snakemake --cores all                       # the default run (config.yaml)
#   snakemake --cores all --configfile my.yaml  # another run
#   snakemake --report report.html              # the HTML report, after a run

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/mpi.smk"
include: "workflow/rules/resample.smk"
include: "workflow/rules/compile.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/cost_sweep.smk"


onsuccess:
    warn_failed_models()


rule all:
    default_target: True
    input:
        analysis_outputs(),

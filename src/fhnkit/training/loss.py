"""The loss of one model (eq. 3.16) assembled from its spec: which terms, on which data, weighted how.

Data terms for every class (an ITNN's on one-step pairs), physics and initial-state terms for a PINN,
the region's physics and data terms (DDNNa/PINNa), the resampled high-error set's data term, and the
continuity term of time windows (eq. 3.20). The terms themselves are in `fhnkit.training.terms` and
`fhnkit.nets.windows`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from ..nets import itnn
from ..plan.model_spec import ModelSpec
from .terms import BoxSampler, ContinuityTerm, DataTerm, InitialTerm, PhysicsTerm

log = logging.getLogger(__name__)


def frame_tensor(df: pd.DataFrame, columns) -> torch.Tensor:
    """float32 tensor (rows, len(columns)) of a frame's columns."""
    return torch.tensor(df[list(columns)].to_numpy(np.float32))


def _data_term(spec: ModelSpec, df: pd.DataFrame, batch_size: int, weight: float, name: str):
    """A data term on the rows of `df` (an ITNN's: on the one-step pairs of its trajectories)."""
    if spec.kind.iterator:
        inputs, targets = itnn.pairs(df, spec.problem, spec.itnn["dt"])
    else:
        inputs, targets = frame_tensor(df, spec.inputs), frame_tensor(df, spec.outputs)
    return DataTerm(inputs, targets, batch_size, weight, name=name)


def build_terms(spec: ModelSpec, train_df: pd.DataFrame, region_df: pd.DataFrame | None = None,
                resampled_df: pd.DataFrame | None = None) -> list:
    """The loss terms of a model (eq. 3.16): data for every class, plus physics and initial state for
    PINN; with the region on (DDNNa/PINNa), a physics term on the region and, when a region data set
    is given, a data term on it, each with its own weight and batch size; with a high-error set from
    resampling, a data term on it; with time windows, the continuity term (eq. 3.20)."""
    weights, batch = spec.training.weights, spec.training.batch
    terms = [_data_term(spec, train_df, spec.batch_size, weights["data"], "data")]
    region = spec.region_settings if spec.region else None
    if region is not None and region_df is not None:
        terms.append(_data_term(spec, region_df, region["data"]["batch"], region["data"]["weight"], "data_region"))
    if resampled_df is not None:
        if len(resampled_df):
            resample = spec.resample
            terms.append(_data_term(spec, resampled_df, resample["batch"], resample["weight"], "data_resampled"))
        else:
            log.warning("%s: the high-error set is empty (no point met the rule); no extra data term", spec.model)
    if not spec.kind.continuous:  # an ITNN learns one-step pairs: no time derivative, no window
        return terms
    box = BoxSampler(spec.input_lo, spec.input_hi)
    if spec.kind.physics:
        terms.append(PhysicsTerm(box, spec.fhn_params, spec.current, batch["physics"], weights["physics"]))
        terms.append(InitialTerm(box, batch["initial"], weights["initial"], fixed_state=spec.initial_state))
    if spec.windows > 1:  # eq. 3.20 at every interface between consecutive windows
        terms.append(ContinuityTerm(box, list(spec.window_edges), batch["continuity"], weights["continuity"]))
    if region is not None:
        terms.append(PhysicsTerm(BoxSampler(*spec.region_box), spec.fhn_params, spec.current,
                                 region["physics"]["batch"], region["physics"]["weight"], name="physics_region"))
    return terms

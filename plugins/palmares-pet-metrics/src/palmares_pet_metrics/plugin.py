"""The plugin's hooks (entry point `pet-metrics` in the group palmares_desktop.plugins)."""

from __future__ import annotations

from palmares_desktop.core.plugins import FeatureExtractor, hookimpl
from palmares_pet_metrics.metrics import PetThresholdParams, threshold_metrics


@hookimpl
def palmares_feature_extractors():
    return [
        FeatureExtractor(
            name="pet_thresholds",
            title="PET metrics at SUV 2.5, SUV 4.0, 41 %, 50 % and PERCIST",
            extract=threshold_metrics,
            parameters=PetThresholdParams,
            modalities=("PT",),
            description="MTV, SUVmax, SUVmean, TLG and Dice with the drawn lesion for each threshold rule.",
        )
    ]

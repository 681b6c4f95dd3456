"""The predictor fixture shared by the predictor tests."""

from __future__ import annotations

import pytest

from sandbox.predictor import PillowPredictor


@pytest.fixture
def predictor() -> PillowPredictor:
    return PillowPredictor()

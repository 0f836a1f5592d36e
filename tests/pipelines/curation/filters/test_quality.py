"""The learned quality model: fits, predicts, and round-trips as JSON (never pickle)."""

from __future__ import annotations

import json

import numpy as np

from pipelines.curation.filters.quality import LogisticQualityModel, load_model, save_model


def test_logistic_quality_model_roundtrips_as_json(tmp_path):
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(200, 2))) * [1, 10]
    y = (x[:, 0] > 0.7).astype(float)
    model = LogisticQualityModel.fit(x, y, ("motion", "blur"))
    assert model.trained_on["train_accuracy"] > 0.9
    path = save_model(model, tmp_path / "m.json")
    assert json.loads(path.read_text())["kind"] == "logistic"
    again = load_model(path)
    assert np.allclose(again.predict(x), model.predict(x))

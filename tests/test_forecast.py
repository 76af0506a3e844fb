"""Tests for drpc.workload.forecast: GRU forecaster, baselines, persistence and splits."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from drpc.workload import Trace, load_trace, train_window
from drpc.workload.forecast import (
    ForecastConfig,
    ForecasterFileError,
    GRUForecaster,
    evaluate_forecasters,
    last_value_forecast,
    load_forecaster,
    main,
    season_bins,
    seasonal_naive_forecast,
    train_forecaster,
    training_series,
)

TINY = ForecastConfig(
    window=8, horizon=3, hidden_size=8, epochs=2, samples_per_series=200, batch_size=64
)


@pytest.fixture(scope="module")
def shipped() -> GRUForecaster:
    return load_forecaster()


@pytest.fixture(scope="module")
def tiny_model() -> GRUForecaster:
    torch.manual_seed(0)
    return GRUForecaster(TINY)


def _sine(n: int = 600, period: int = 96, mean: float = 100.0, amp: float = 50.0) -> np.ndarray:
    return mean + amp * np.sin(2 * np.pi * np.arange(n) / period)


def _rolling(x: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.lib.stride_tricks.sliding_window_view(x, window + horizon)
    return v[:, :window], v[:, window:]


# --------------------------------------------------------------------------- model basics
def test_predict_shapes_and_nonnegative(tiny_model: GRUForecaster) -> None:
    w, k = TINY.window, TINY.horizon
    rng = np.random.default_rng(0)
    assert tiny_model.predict(rng.uniform(0, 10, w)).shape == (k,)
    assert tiny_model.predict(rng.uniform(0, 10, (5, w))).shape == (5, k)
    out = tiny_model.predict(rng.uniform(0, 10, (2, 3, w)))
    assert out.shape == (2, 3, k) and out.dtype == np.float64 and np.all(out >= 0)
    assert np.all(tiny_model.predict(np.zeros(w)) < 1e-5)  # idle stays (near) idle
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        tiny_model.predict(np.ones(w + 1))
    with pytest.raises(ValueError, match="finite"):
        tiny_model.predict(np.full(w, np.nan))


def test_scale_free_and_numpy_fast_path(tiny_model: GRUForecaster) -> None:
    rng = np.random.default_rng(1)
    hist = rng.uniform(1, 10, (4, TINY.window))
    base = tiny_model.predict(hist)
    np.testing.assert_allclose(tiny_model.predict(hist * 1000.0), base * 1000.0, rtol=1e-4)
    fast = tiny_model.numpy_predictor()
    np.testing.assert_allclose(fast(hist), base, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast(hist[0]), base[0], rtol=1e-5, atol=1e-6)
    clone = pickle.loads(pickle.dumps(fast))
    np.testing.assert_allclose(clone(hist), fast(hist))


def test_config_round_trip_and_validation() -> None:
    cfg = ForecastConfig(extra_bin_s=(30.0,), window=12)
    assert ForecastConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        ForecastConfig.from_dict({"windw": 3})
    with pytest.raises(ValueError, match="horizon"):
        ForecastConfig(horizon=0)


# --------------------------------------------------------------------------- baselines
def test_baselines() -> None:
    hist = np.arange(10.0)[None, :].repeat(2, axis=0)
    np.testing.assert_array_equal(last_value_forecast(hist, 3), [[9, 9, 9], [9, 9, 9]])
    np.testing.assert_array_equal(seasonal_naive_forecast(hist[0], 3, season=5), [5, 6, 7])
    with pytest.raises(ValueError):
        seasonal_naive_forecast(hist[0], 6, season=5)


@pytest.mark.parametrize(
    ("name", "bin_s", "expected"),
    [
        ("nasa", 60.0, 1440),
        ("worldcup98", 300.0, 288),
        ("alibaba", 60.0, 60),
        ("azure_code", 1.0, 60),
        ("azure_conv", 15.0, 4),
    ],
)
def test_season_rule(name: str, bin_s: float, expected: int) -> None:
    assert season_bins(load_trace(name).duration_s, bin_s, horizon=4)[0] == expected


# --------------------------------------------------------------------------- persistence
def test_save_load_round_trip(tmp_path: Path, tiny_model: GRUForecaster) -> None:
    tiny_model.metadata = {"note": "unit test"}
    path = tiny_model.save(tmp_path / "m.pt")
    back = load_forecaster(path)
    assert back.config == TINY and back.metadata == {"note": "unit test"}
    hist = np.random.default_rng(2).uniform(0, 5, (3, TINY.window))
    np.testing.assert_array_equal(back.predict(hist), tiny_model.predict(hist))


def test_load_uses_weights_only(
    tmp_path: Path, tiny_model: GRUForecaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_model.save(tmp_path / "m.pt")
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_forecaster(path)
    assert calls and all(c.get("weights_only") is True for c in calls)


class _Payload:
    """An arbitrary picklable object: weights_only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "drpc.workload.GRUForecaster", "obj": _Payload()}, path)
    with pytest.raises(ForecasterFileError, match="evil.pt"):
        load_forecaster(path)


def test_corrupt_and_wrong_files(tmp_path: Path, tiny_model: GRUForecaster) -> None:
    good = tiny_model.save(tmp_path / "good.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "something else"}, wrong)
    bad_shapes = tmp_path / "shapes.pt"
    replace_model = GRUForecaster(replace(TINY, hidden_size=4))
    replace_model.save(bad_shapes)
    payload = torch.load(bad_shapes, weights_only=True)
    payload["config"]["hidden_size"] = 8
    torch.save(payload, bad_shapes)
    for path, match in [
        (truncated, "truncated or corrupt"),
        (garbage, "truncated or corrupt"),
        (wrong, "not a drpc.workload.GRUForecaster file"),
        (bad_shapes, "inconsistent"),
        (tmp_path / "absent.pt", "no such"),
    ]:
        with pytest.raises(ForecasterFileError, match=match) as info:
            load_forecaster(path)
        assert path.name in str(info.value)


# --------------------------------------------------------------------------- shipped model
def test_shipped_model_small_and_loadable(shipped: GRUForecaster) -> None:
    from drpc.workload.forecast import _bundled_model_path

    assert _bundled_model_path().stat().st_size < 1_000_000
    assert shipped.config.horizon == 4
    assert "command" in shipped.metadata


def test_shipped_model_beats_last_value_on_clean_sine(shipped: GRUForecaster) -> None:
    w, k = shipped.config.window, shipped.config.horizon
    hist, actual = _rolling(_sine(), w, k)
    gru = shipped.predict(hist)
    lv = last_value_forecast(hist, k)
    mape_gru = np.mean(np.abs(gru - actual) / actual)
    mape_lv = np.mean(np.abs(lv - actual) / actual)
    assert mape_gru < mape_lv


def test_shipped_model_keeps_a_constant_rate(shipped: GRUForecaster) -> None:
    pred = shipped.predict(np.full(shipped.config.window, 42.0))
    np.testing.assert_allclose(pred, 42.0, rtol=0.05)


# --------------------------------------------------------------------------- splits & training
def test_training_series_exclude_evaluation_bins() -> None:
    series = training_series(config=ForecastConfig())
    assert {s.bin_s for s in series} >= {1.0, 15.0, 60.0, 300.0}
    for s in series:
        _, train_end_s = train_window(s.name)
        assert s.start_s >= 0.0 and s.end_s <= train_end_s, s


def test_training_never_sees_a_marker_in_the_evaluation_window() -> None:
    nasa = load_trace("nasa")
    marked = nasa.rps.copy()
    _, train_end_s = train_window("nasa")
    marked[nasa.t_s >= train_end_s] = 1e6  # every evaluation bin carries a marker
    tr = Trace(nasa.name, marked, nasa.bin_s, nasa.start_s)
    series = training_series([tr], ForecastConfig(extra_bin_s=(300.0, 420.0)))
    assert len(series) == 3
    assert all(s.peak_rps < 1e3 for s in series)


def test_train_forecaster_small_and_deterministic() -> None:
    from drpc.workload import diurnal

    traces = [diurnal(2 * 86_400, 300, mean_rps=50.0, seed=0)]
    cfg = replace(TINY, extra_bin_s=())
    a = train_forecaster(traces, cfg, progress=False)
    b = train_forecaster(traces, cfg, progress=False)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert a.metadata["best_epoch"] in (1, 2)
    assert len(a.metadata["history"]) == 2


def test_evaluate_forecasters_structure(tiny_model: GRUForecaster) -> None:
    report = evaluate_forecasters(tiny_model, [load_trace("azure_conv")], bins_s=(15.0,))
    assert set(report["results"]) == {
        "azure_llm_inference_2023_conv_per_second@1s",
        "azure_llm_inference_2023_conv_per_second@15s",
    }
    r = report["results"]["azure_llm_inference_2023_conv_per_second@1s"]
    assert r["eval_window_s"] == [1800.0, 3503.0] and r["first_target_s"] >= 1800.0
    assert r["n_origins"] == 3503 - 1800 - TINY.horizon + 1
    for method in ("gru", "last_value", "seasonal_naive"):
        assert len(r[method]["mape"]) == TINY.horizon == len(r[method]["wape"])
        assert all(np.isfinite(r[method]["wape"]))


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "report" in out

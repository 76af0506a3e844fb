"""Tests for drpc.workload: traces, splits, external formats and synthetic generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drpc.workload import (
    TRACE_ALIASES,
    Trace,
    TraceError,
    bundled_traces,
    diurnal,
    eval_part,
    eval_window,
    flash_crowd,
    load_trace,
    mmpp,
    mmpp_stationary_rps,
    ramp,
    read_alibaba_v2021_mcr,
    read_alibaba_v2022_mcr,
    read_azure_functions_2019,
    step,
    train_part,
    train_window,
    write_trace,
)

EXPECTED = {
    # stem: (bin_s, rows, train_end_s)
    "nasa_http_1995_07_per_minute": (60.0, 39_692, 864_000.0),
    "worldcup98_1998_per_minute": (60.0, 125_310, 4_752_000.0),
    "azure_llm_inference_2023_code_per_second": (1.0, 3_437, 1_800.0),
    "azure_llm_inference_2023_conv_per_second": (1.0, 3_503, 1_800.0),
    "alibaba_microservices_2021_ms6d9c26b9_per_minute": (60.0, 711, 21_600.0),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _trace(values: list[float] | np.ndarray, bin_s: float = 60.0, start_s: float = 0.0) -> Trace:
    return Trace(name="t", rps=np.asarray(values, dtype=float), bin_s=bin_s, start_s=start_s)


# --------------------------------------------------------------------------- bundled traces
def test_bundled_traces_listed() -> None:
    files = bundled_traces()
    assert set(files) == set(EXPECTED)
    assert all(p.is_file() and p.suffix == ".csv" for p in files.values())


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_load_each_bundled_trace(stem: str) -> None:
    bin_s, rows, _ = EXPECTED[stem]
    tr = load_trace(bundled_traces()[stem])
    assert tr.name == stem
    assert tr.bin_s == bin_s and tr.n_bins == rows and tr.start_s == 0.0
    assert tr.rps.dtype == np.float64 and np.all(np.isfinite(tr.rps)) and tr.rps.min() >= 0
    assert tr.duration_s == rows * bin_s
    np.testing.assert_allclose(tr.t_s[:3], [0.0, bin_s, 2 * bin_s])


def test_load_by_alias_and_stem() -> None:
    for alias, stem in TRACE_ALIASES.items():
        assert load_trace(alias).name == stem
    assert load_trace("nasa_http_1995_07_per_minute").n_bins == 39_692
    nasa = load_trace("nasa")
    assert nasa.peak_rps == pytest.approx(6.75)
    assert nasa.mean_rps == pytest.approx(0.79, abs=0.01)
    with pytest.raises(KeyError, match="unknown bundled trace"):
        load_trace("no_such_trace")


def test_trace_is_immutable_and_validated() -> None:
    tr = _trace([1.0, 2.0])
    with pytest.raises(ValueError):
        tr.rps[0] = 5.0
    with pytest.raises(ValueError, match="negative"):
        _trace([1.0, -1.0])
    with pytest.raises(ValueError, match="not finite"):
        _trace([1.0, np.nan])
    with pytest.raises(ValueError, match="bin_s"):
        _trace([1.0], bin_s=0.0)


# --------------------------------------------------------------------------- transforms
def test_window_half_open_keeps_time_axis() -> None:
    tr = _trace(np.arange(10.0), bin_s=60.0, start_s=600.0)
    w = tr.window(720.0, 900.0)
    np.testing.assert_array_equal(w.rps, [2.0, 3.0, 4.0])
    assert w.start_s == 720.0 and w.end_s == 900.0
    np.testing.assert_array_equal(tr.window(600.0).rps, tr.rps)
    with pytest.raises(ValueError, match="outside"):
        tr.window(0.0, 700.0)
    with pytest.raises(ValueError, match="outside"):
        tr.window(700.0, 1300.0)
    with pytest.raises(ValueError, match="no bin"):
        tr.window(721.0, 779.0)


def test_scale_and_peak() -> None:
    tr = _trace([1.0, 4.0, 2.0])
    np.testing.assert_allclose(tr.scaled(2.5).rps, [2.5, 10.0, 5.0])
    r = tr.rescaled_to_peak(80.0)
    assert r.peak_rps == pytest.approx(80.0)
    np.testing.assert_allclose(r.rps / tr.rps, 20.0)
    with pytest.raises(ValueError):
        _trace([0.0, 0.0]).rescaled_to_peak(10.0)
    with pytest.raises(ValueError):
        tr.scaled(-1.0)


def test_time_compressed() -> None:
    tr = _trace([1.0, 2.0, 3.0], bin_s=60.0, start_s=120.0)
    c = tr.time_compressed(4)
    np.testing.assert_array_equal(c.rps, tr.rps)
    assert c.bin_s == 15.0 and c.start_s == 30.0 and c.duration_s == 45.0
    assert c.mean_rps == tr.mean_rps


def test_resampled_mean_preserving_up_and_down() -> None:
    rng = np.random.default_rng(0)
    tr = _trace(rng.uniform(0, 100, 120), bin_s=60.0)
    coarse = tr.resampled(300.0)
    assert coarse.n_bins == 24 and coarse.bin_s == 300.0
    assert coarse.mean_rps == pytest.approx(tr.mean_rps)
    np.testing.assert_allclose(coarse.rps[0], tr.rps[:5].mean())
    fine = tr.resampled(15.0)
    assert fine.n_bins == 480 and fine.mean_rps == pytest.approx(tr.mean_rps)
    np.testing.assert_array_equal(fine.resampled(60.0).rps, tr.rps)
    # trailing partial group is dropped
    assert _trace(np.ones(7)).resampled(180.0).n_bins == 2
    with pytest.raises(ValueError, match="integer"):
        tr.resampled(90.0)


def test_rate_at_piecewise_constant_and_clamped() -> None:
    tr = _trace([1.0, 2.0, 3.0], bin_s=10.0, start_s=100.0)
    t = np.array([100.0, 109.9, 110.0, 125.0, 130.0, 1e6])
    np.testing.assert_array_equal(tr.rate_at(t), [1.0, 1.0, 2.0, 3.0, 3.0, 3.0])
    assert tr.rate_at(np.zeros((2, 2)) + 105.0).shape == (2, 2)
    with pytest.raises(ValueError, match="before the start"):
        tr.rate_at(np.array([99.0]))
    np.testing.assert_array_equal(tr.rebased().rate_at(np.array([0.0, 10.0])), [1.0, 2.0])


def test_write_trace_round_trip(tmp_path: Path) -> None:
    tr = _trace([0.5, 1.25, 3.0], bin_s=15.0, start_s=30.0)
    back = load_trace(write_trace(tr, tmp_path / "x.csv"))
    np.testing.assert_allclose(back.rps, tr.rps)
    assert back.bin_s == 15.0 and back.start_s == 30.0


# --------------------------------------------------------------------------- validation
BAD_CSVS = {
    "header": ("timestamp,rate\n0,1\n60,2\n", 1, "rps"),
    "missing_column": ("timestamp\n0\n60\n", 1, "rps"),
    "nan": ("timestamp,rps\n0,1\n60,nan\n120,1\n", 3, "rps"),
    "empty_cell": ("timestamp,rps\n0,1\n60,1\n120,\n", 4, "rps"),
    "text": ("timestamp,rps\n0,1\n60,1\n120,abc\n", 4, "rps"),
    "inf": ("timestamp,rps\n0,1\n60,inf\n", 3, "rps"),
    "negative": ("timestamp,rps\n0,1\n60,1\n120,-0.5\n", 4, "rps"),
    "non_monotonic": ("timestamp,rps\n0,1\n60,1\n30,1\n", 4, "timestamp"),
    "duplicate_time": ("timestamp,rps\n0,1\n60,1\n60,1\n", 4, "timestamp"),
    "unequal_bins": ("timestamp,rps\n0,1\n60,1\n120,1\n240,1\n", 5, "timestamp"),
    "bad_timestamp": ("timestamp,rps\n0,1\nx,1\n", 3, "timestamp"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_validation_errors_name_file_line_field(tmp_path: Path, case: str) -> None:
    text, line, field = BAD_CSVS[case]
    path = _write(tmp_path / f"{case}.csv", text)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"line {line}" in msg
    assert f"'{field}'" in msg


def test_validation_errors_structure(tmp_path: Path) -> None:
    for text, expect in [
        ("", "empty"),
        ("timestamp,rps\n", "no data rows"),
        ("timestamp,rps\n0,1\n", "at least 2 rows"),
        ("timestamp,rps\n0,1\n60,1,5\n", "line 3"),
    ]:
        path = _write(tmp_path / "bad.csv", text)
        with pytest.raises(TraceError, match=expect) as info:
            load_trace(path)
        assert str(path) in str(info.value)
    with pytest.raises(TraceError, match="no such"):
        load_trace(tmp_path / "absent.csv")


# --------------------------------------------------------------------------- splits
@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_splits_match_readme(stem: str) -> None:
    bin_s, rows, train_end_s = EXPECTED[stem]
    assert train_window(stem) == (0.0, train_end_s)
    assert eval_window(stem) == (train_end_s, rows * bin_s)
    tr = load_trace(stem)
    tp, ep = tr.train_part(), tr.eval_part()
    assert tp.end_s <= train_end_s and ep.start_s >= train_end_s
    assert tp.n_bins + ep.n_bins == tr.n_bins
    assert tp.t_s.max() < train_end_s <= ep.t_s.min()


def test_split_aliases_and_coarse_bins_never_straddle() -> None:
    assert train_window("nasa") == train_window("nasa_http_1995_07_per_minute")
    nasa = load_trace("nasa")
    tp = train_part(nasa.resampled(420.0))  # 864000 / 420 is not whole: last bin straddles
    assert tp.end_s <= 864_000.0
    assert eval_part(nasa.resampled(420.0)).start_s >= 864_000.0
    with pytest.raises(KeyError):
        train_part(_trace([1.0, 2.0]))


# --------------------------------------------------------------------------- formats
def test_alibaba_v2021_long_format(tmp_path: Path) -> None:
    rows = [
        "timestamp,msname,msinstanceid,metric,value",
        "0,msA,a1,providerRPC_MCR,10",
        "0,msA,a2,providerRPC_MCR,5",
        "0,msA,a1,providerRPC_RT,3.5",
        "0,msB,b1,providerRPC_MCR,1",
        "60000,msA,a1,providerRPC_MCR,7",
        "60000,msB,b1,consumerRPC_MCR,99",
        "120000,msB,b1,providerRPC_MCR,2",
    ]
    path = _write(tmp_path / "MSRTQps_0.csv", "\n".join(rows) + "\n")
    out = read_alibaba_v2021_mcr(path)
    assert set(out) == {"msA", "msB"}
    np.testing.assert_allclose(out["msA"].rps, [15.0, 7.0, 0.0])
    np.testing.assert_allclose(out["msB"].rps, [1.0, 0.0, 2.0])
    assert out["msA"].bin_s == 60.0 and out["msA"].start_s == 0.0
    cons = read_alibaba_v2021_mcr(path, "consumerRPC_MCR")
    np.testing.assert_allclose(cons["msB"].rps, [99.0])
    assert cons["msB"].start_s == 60.0
    agg = read_alibaba_v2021_mcr(path, aggregate=True)["all"]
    np.testing.assert_allclose(agg.rps, [16.0, 7.0, 2.0])
    two_min = read_alibaba_v2021_mcr(path, bin_s=120.0, msnames=["msA"])
    np.testing.assert_allclose(two_min["msA"].rps, [11.0, 0.0])  # (15 + 7) / 2 samples
    with pytest.raises(ValueError, match="not a call rate"):
        read_alibaba_v2021_mcr(path, "providerRPC_RT")
    with pytest.raises(TraceError, match="msC"):
        read_alibaba_v2021_mcr(path, msnames=["msC"])


def test_alibaba_v2021_errors(tmp_path: Path) -> None:
    head = "timestamp,msname,msinstanceid,metric,value\n"
    cases = {
        "missing": ("timestamp,msname,msinstanceid,value\n0,a,a1,1\n", "line 1", "metric"),
        "nan": (
            head + "0,a,a1,providerRPC_MCR,1\n60000,a,a1,providerRPC_MCR,nan\n",
            "line 3",
            "value",
        ),
        "neg": (head + "0,a,a1,providerRPC_MCR,-2\n", "line 2", "value"),
        "text": (
            head + "0,a,a1,providerRPC_MCR,1\nzz,a,a1,providerRPC_MCR,1\n",
            "line 3",
            "timestamp",
        ),
        "nometric": (head + "0,a,a1,HTTP_MCR,1\n", "no row", "metric"),
    }
    for case, (text, where, field) in cases.items():
        path = _write(tmp_path / f"{case}.csv", text)
        with pytest.raises(TraceError) as info:
            read_alibaba_v2021_mcr(path)
        msg = str(info.value)
        assert str(path) in msg and where in msg and field in msg, msg


def test_alibaba_v2022_wide_format(tmp_path: Path) -> None:
    header = (
        ",timestamp,msname,msinstanceid,nodeid,providerrpc_rt,providerrpc_mcr,consumerrpc_rt,"
        "consumerrpc_mcr,http_mcr,http_rt"
    )
    rows = [
        header,
        "0,60000,MS_1,MS_1_POD_0,NODE_1,10.0,0.25,1.0,0.5,0.0,0.0",
        "1,60000,MS_1,MS_1_POD_1,NODE_2,11.0,0.5,1.0,0.1,0.0,0.0",
        "2,120000,MS_1,MS_1_POD_0,NODE_1,9.0,0.125,1.0,0.0,0.1,2.0",
        "3,120000,MS_2,MS_2_POD_0,NODE_3,9.0,1.0,1.0,0.0,0.0,0.0",
    ]
    path = _write(tmp_path / "MSRTMCR_0.csv", "\n".join(rows) + "\n")
    out = read_alibaba_v2022_mcr(path, "providerRPC_MCR")
    np.testing.assert_allclose(out["MS_1"].rps, [0.75, 0.125])
    np.testing.assert_allclose(out["MS_2"].rps, [0.0, 1.0])
    assert out["MS_1"].start_s == 60.0
    np.testing.assert_allclose(read_alibaba_v2022_mcr(path, "HTTP_MCR")["MS_1"].rps, [0.0, 0.1])
    with pytest.raises(TraceError, match="missing column 'readMC_MCR'"):
        read_alibaba_v2022_mcr(path, "readMC_MCR")
    bad = _write(tmp_path / "bad.csv", "\n".join([*rows, "4,180000,MS_1,P,N,1,-1,1,1,1,1"]) + "\n")
    with pytest.raises(TraceError, match=r"line 6, column 'providerrpc_mcr'"):
        read_alibaba_v2022_mcr(bad)


def _azure_file(path: Path, rows: list[tuple[str, str, str, str, list[int]]]) -> Path:
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, 1441))
    lines = [header]
    for owner, app, fn, trig, counts in rows:
        full = counts + [0] * (1440 - len(counts))
        lines.append(",".join([owner, app, fn, trig, *map(str, full)]))
    return _write(path, "\n".join(lines) + "\n")


def test_azure_functions_2019(tmp_path: Path) -> None:
    d1 = _azure_file(
        tmp_path / "invocations_per_function_md.anon.d01.csv",
        [
            ("o1", "app1", "f1", "http", [60, 120, 0]),
            ("o1", "app1", "f2", "timer", [6, 0, 6]),
            ("o2", "app2", "f3", "http", [0, 0, 600]),
        ],
    )
    out = read_azure_functions_2019(d1)
    assert set(out) == {"f1", "f2", "f3"}
    f1 = out["f1"]
    assert f1.bin_s == 60.0 and f1.n_bins == 1440
    np.testing.assert_allclose(f1.rps[:3], [1.0, 2.0, 0.0])
    apps = read_azure_functions_2019(d1, group_by="app")
    np.testing.assert_allclose(apps["app1"].rps[:3], [1.1, 2.0, 0.1])
    http = read_azure_functions_2019(d1, group_by="all", triggers={"http"})["all"]
    np.testing.assert_allclose(http.rps[:3], [1.0, 2.0, 10.0])
    d2 = _azure_file(tmp_path / "d02.csv", [("o1", "app1", "f1", "http", [30])])
    two = read_azure_functions_2019([d1, d2])
    assert two["f1"].n_bins == 2880 and two["f1"].rps[1440] == 0.5
    assert two["f3"].rps[1440:].sum() == 0.0


def test_azure_functions_2019_errors(tmp_path: Path) -> None:
    good = _azure_file(tmp_path / "good.csv", [("o", "a", "f", "http", [1, 2])])
    lines = good.read_text().splitlines()
    bad_header = _write(tmp_path / "h.csv", lines[0].replace(",1440", "") + "\n" + lines[1] + "\n")
    with pytest.raises(TraceError, match=r"line 1, column '1440'") as info:
        read_azure_functions_2019(bad_header)
    assert str(bad_header) in str(info.value)
    neg = _write(
        tmp_path / "n.csv", lines[0] + "\n" + lines[1].replace(",1,2,", ",1,-2,", 1) + "\n"
    )
    with pytest.raises(TraceError, match=r"n.csv, line 2, column '2'"):
        read_azure_functions_2019(neg)
    text = _write(
        tmp_path / "t.csv", lines[0] + "\n" + lines[1].replace(",1,2,", ",1,x,", 1) + "\n"
    )
    with pytest.raises(TraceError, match=r"t.csv, line 2, column '2'"):
        read_azure_functions_2019(text)


# --------------------------------------------------------------------------- synthetic
GENERATORS = {
    "diurnal": lambda seed: diurnal(2 * 86_400, 60, mean_rps=20.0, seed=seed),
    "mmpp": lambda seed: mmpp(86_400, 60, seed=seed),
    "flash_crowd": lambda seed: flash_crowd(
        3_600, 10, base_rps=5, peak_rps=50, start_s=600, seed=seed
    ),
    "step": lambda seed: step(600, 1, before_rps=5, after_rps=20, at_s=300, seed=seed),
    "ramp": lambda seed: ramp(600, 5, start_rps=1, end_rps=30, seed=seed),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_deterministic_per_seed(name: str) -> None:
    a, b, c = GENERATORS[name](1), GENERATORS[name](1), GENERATORS[name](2)
    np.testing.assert_array_equal(a.rps, b.rps)
    assert not np.array_equal(a.rps, c.rps)
    assert a.rps.min() >= 0 and a.name == name


def test_generator_shapes() -> None:
    d = diurnal(2 * 86_400, 60, mean_rps=20.0, amplitude=0.5, peak_at_s=3_600, poisson=False)
    assert d.n_bins == 2_880 and d.mean_rps == pytest.approx(20.0)
    assert d.peak_rps == pytest.approx(30.0, rel=1e-3)
    assert abs(d.t_s[np.argmax(d.rps)] - 3_600) <= 60

    f = flash_crowd(
        3_600, 10, base_rps=5, peak_rps=50, start_s=600, rise_s=60, hold_s=300, poisson=False
    )
    assert f.peak_rps == pytest.approx(50.0)
    at_peak = f.t_s[f.rps == f.peak_rps]
    assert at_peak.min() >= 660 and at_peak.max() < 960
    assert np.all(f.rps[f.t_s < 600] == 5.0)
    assert f.rps[-1] == pytest.approx(5.0, abs=1.0)  # exp(-4.4) of the excess left

    s = step(600, 1, before_rps=5, after_rps=20, at_s=300, poisson=False)
    assert np.all(s.rps[:300] == 5) and np.all(s.rps[300:] == 20)
    r = ramp(100, 1, start_rps=0, end_rps=10, ramp_start_s=20, ramp_end_s=70, poisson=False)
    assert r.rps[0] == 0 and r.rps[-1] == 10 and np.all(np.diff(r.rps) >= 0)


def test_mmpp_mean_close_to_stationary() -> None:
    rates, q = (2.0, 40.0), ((0.0, 1 / 120), (1 / 40, 0.0))
    expected = mmpp_stationary_rps(rates, q)
    assert expected == pytest.approx(2.0 * 0.75 + 40.0 * 0.25)
    tr = mmpp(20 * 86_400, 60, rates_rps=rates, switch_rates_per_s=q, seed=3)
    assert tr.mean_rps == pytest.approx(expected, rel=0.03)
    noiseless = mmpp(86_400, 60, rates_rps=rates, switch_rates_per_s=q, poisson=False, seed=0)
    assert noiseless.rps.min() >= 2.0 - 1e-9 and noiseless.rps.max() <= 40.0 + 1e-9
    assert np.std(tr.rps) > 5.0  # bursty, not flat
    with pytest.raises(ValueError, match="shape"):
        mmpp(600, 1, rates_rps=(1.0, 2.0), switch_rates_per_s=np.zeros((3, 3)))

"""The bundled apps (drpc/apps/*.yaml) and the random app generator (drpc.sim.generate)."""

from __future__ import annotations

import statistics
import time
from collections import Counter

import pytest

from drpc.sim.app import App, Endpoint, bundled_apps, load_app
from drpc.sim.generate import GraphConfig, generate_app, main, write_app

BUNDLED = ["trainticket", "online-boutique", "sock-shop", "hotel-reservation"]


# ---------------------------------------------------------------- helpers


def unloaded_latency_s(app: App, ep: Endpoint) -> float:
    """Unloaded end-to-end latency: own CPU time + sum over sequential children of multiplicity x
    child latency + max over parallel children."""
    cost = {s.name: s.cpu_seconds_per_request for s in app.services}
    children: dict[str, list] = {}
    for call in ep.calls:
        children.setdefault(call.caller, []).append(call)

    def latency(name: str) -> float:
        kids = children.get(name, [])
        seq = sum(c.multiplicity * latency(c.callee) for c in kids if c.mode == "sequential")
        par = max((latency(c.callee) for c in kids if c.mode == "parallel"), default=0.0)
        return cost[name] + seq + par

    return latency(ep.entry)


def depth(ep: Endpoint) -> int:
    """Services on the longest path from the entry (entry = 1)."""
    children: dict[str, list[str]] = {}
    for call in ep.calls:
        children.setdefault(call.caller, []).append(call.callee)
    best = {ep.entry: 1}
    stack = [ep.entry]
    while stack:
        node = stack.pop()
        for kid in children.get(node, []):
            if best.get(kid, 0) < best[node] + 1:
                best[kid] = best[node] + 1
                stack.append(kid)
    return max(best.values())


def reachable(app: App) -> set[str]:
    seen: set[str] = set()
    for ep in app.endpoints:
        seen.add(ep.entry)
        seen.update(call.callee for call in ep.calls)
    return seen


def fan_outs(app: App) -> list[int]:
    """Distinct callees per (endpoint, caller)."""
    counts: Counter = Counter()
    for ep in app.endpoints:
        for call in ep.calls:
            counts[(ep.name, call.caller)] += 1
    return list(counts.values())


# ---------------------------------------------------------------- bundled apps


def test_bundled_apps_are_listed():
    assert set(BUNDLED) <= set(bundled_apps())


@pytest.fixture(scope="module", params=BUNDLED)
def bundled(request) -> App:
    return load_app(request.param)


def test_bundled_app_loads_and_is_named(bundled: App):
    assert bundled.name in BUNDLED
    assert len(bundled.endpoints) >= 4


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("trainticket", 40, 10_000),
        ("online-boutique", 11, 11),
        ("sock-shop", 14, 14),
        ("hotel-reservation", 11, 20),
    ],
)
def test_service_counts(name: str, low: int, high: int):
    assert low <= len(load_app(name).services) <= high


def test_real_service_names():
    tt = set(load_app("trainticket").service_names)
    for name in [
        "ts-ui-dashboard", "ts-auth-service", "ts-travel-service", "ts-travel2-service",
        "ts-order-service", "ts-seat-service", "ts-station-service", "ts-route-service",
        "ts-price-service", "ts-basic-service", "ts-ticketinfo-service", "ts-config-service",
        "ts-train-service", "ts-contacts-service", "ts-preserve-service", "ts-security-service",
        "ts-food-service", "ts-assurance-service", "ts-user-service",
        "ts-verification-code-service",
    ]:  # fmt: skip
        assert name in tt
    assert set(load_app("online-boutique").service_names) == {
        "frontend", "cartservice", "productcatalogservice", "currencyservice", "paymentservice",
        "shippingservice", "emailservice", "checkoutservice", "recommendationservice", "adservice",
        "redis-cart",
    }  # fmt: skip
    assert set(load_app("sock-shop").service_names) == {
        "front-end", "catalogue", "catalogue-db", "carts", "carts-db", "orders", "orders-db",
        "payment", "shipping", "queue-master", "rabbitmq", "user", "user-db", "session-db",
    }  # fmt: skip
    hotel = set(load_app("hotel-reservation").service_names)
    assert {"frontend", "search", "geo", "rate", "profile", "recommendation", "user"} <= hotel
    assert {"reservation", "memcached-rate", "memcached-profile", "mongodb-rate"} <= hotel


def test_bundled_all_services_reachable(bundled: App):
    assert reachable(bundled) == set(bundled.service_names)


def test_bundled_no_duplicate_edges(bundled: App):
    for ep in bundled.endpoints:
        pairs = [(c.caller, c.callee) for c in ep.calls]
        assert len(pairs) == len(set(pairs)), ep.name


def test_bundled_slo_well_above_unloaded_latency(bundled: App):
    for ep in bundled.endpoints:
        unloaded_ms = 1000.0 * unloaded_latency_s(bundled, ep)
        assert ep.slo_p99_ms >= 2.0 * unloaded_ms, (ep.name, ep.slo_p99_ms, unloaded_ms)


def test_bundled_resources_sensible(bundled: App):
    for s in bundled.services:
        assert 1 <= s.replicas <= 2, s.name
        assert s.max_replicas >= 4, s.name
        # an idle pod plus a few in-flight requests fits under its memory limit
        assert s.memory_base_mib + 10 * s.memory_per_inflight_mib < s.memory_limit_mib, s.name
        assert s.cpu_seconds_per_request < 0.2, s.name


def test_bundled_provenance_says_measured_or_assumed(bundled: App):
    text = bundled.provenance
    assert "measured" in text and "assumed" in text
    for group in ("resources", "cpu_seconds_per_request", "request mix", "slo_p99_ms"):
        assert group in text, group


def _mix(app: App) -> dict[str, float]:
    total = sum(ep.weight for ep in app.endpoints)
    return {ep.name: ep.weight / total for ep in app.endpoints}


def test_hotel_mix_is_the_wrk2_mixed_workload():
    mix = _mix(load_app("hotel-reservation"))
    assert mix == pytest.approx(
        {"search_hotel": 0.6, "recommend": 0.39, "user_login": 0.005, "reserve": 0.005}
    )


def test_online_boutique_mix_follows_the_locustfile():
    app = load_app("online-boutique")
    weights = {ep.name: ep.weight for ep in app.endpoints}
    # tasks index 1, setCurrency 2, browseProduct 10, addToCart 2, viewCart 3, checkout 1;
    # addToCart browses a product first and checkout runs addToCart first
    assert weights == {
        "index": 1, "setCurrency": 2, "browseProduct": 13, "addToCart": 3, "viewCart": 3,
        "checkout": 1,
    }  # fmt: skip


def test_hotel_search_calls_geo_then_rate():
    app = load_app("hotel-reservation")
    search = next(ep for ep in app.endpoints if ep.name == "search_hotel")
    edges = {(c.caller, c.callee): c.mode for c in search.calls}
    assert edges[("search", "geo")] == "sequential"
    assert edges[("search", "rate")] == "sequential"
    assert depth(search) == 4


# ---------------------------------------------------------------- generator


def test_generator_is_deterministic():
    a = generate_app(200, seed=5).model_dump()
    b = generate_app(200, seed=5).model_dump()
    c = generate_app(200, seed=6).model_dump()
    assert a == b
    assert a != c


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_generator_counts_depth_reachability_slo(n: int):
    app = generate_app(n, seed=1)
    assert len(app.services) == n
    assert len(app.endpoints) == max(1, round(n**0.5))
    assert reachable(app) == set(app.service_names)
    for ep in app.endpoints:
        assert 3 <= depth(ep) <= 6, (ep.name, depth(ep))
        assert ep.slo_p99_ms >= 2.0 * 1000.0 * unloaded_latency_s(app, ep)
    for s in app.services:
        assert 1 <= s.max_replicas <= 20


def test_generator_10000_services_fast_and_heavy_tailed():
    start = time.perf_counter()
    app = generate_app(10_000, seed=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, elapsed
    assert len(app.services) == 10_000
    assert reachable(app) == set(app.service_names)
    assert all(3 <= depth(ep) <= 6 for ep in app.endpoints)
    fo = fan_outs(app)
    assert max(fo) >= 10 * statistics.median(fo)
    # a few hot shared (stateful) services are called by most endpoints
    users: Counter = Counter()
    for ep in app.endpoints:
        users.update({c.callee for c in ep.calls if not c.callee.startswith("svc-")})
    assert users.most_common(1)[0][1] >= 0.5 * len(app.endpoints)
    mult = [c.multiplicity for ep in app.endpoints for c in ep.calls]
    assert statistics.median(mult) == 1.0 and max(mult) > 2.0
    modes = Counter(c.mode for ep in app.endpoints for c in ep.calls)
    assert modes["parallel"] > 0 and modes["sequential"] > modes["parallel"]


def test_generator_fan_out_heavy_tailed_at_1000():
    fo = fan_outs(generate_app(1000, seed=2))
    assert max(fo) >= 5 * statistics.median(fo)


def test_generator_tiny_and_invalid():
    app = generate_app(2, seed=0)  # best effort: too small for depth 3
    assert len(app.services) == 2 and reachable(app) == set(app.service_names)
    assert all(3 <= depth(ep) <= 6 for ep in generate_app(3, seed=0).endpoints)
    with pytest.raises(ValueError):
        generate_app(1, seed=0)
    with pytest.raises(ValueError):
        GraphConfig(min_depth=4, max_depth=3)
    with pytest.raises(ValueError):
        GraphConfig(depth_weights=(1.0,))


def test_generator_config_changes_the_graph():
    deep = generate_app(300, seed=4, config=GraphConfig(min_depth=5, depth_weights=(1.0, 1.0)))
    assert all(5 <= depth(ep) <= 6 for ep in deep.endpoints)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_write_app_round_trip(tmp_path, suffix: str):
    app = generate_app(60, seed=9)
    path = write_app(app, tmp_path / f"app{suffix}")
    assert load_app(path) == app


def test_cli_writes_a_loadable_app(tmp_path, capsys):
    out = tmp_path / "app.yaml"
    assert main(["--services", "50", "--seed", "3", "--out", str(out)]) == 0
    assert len(load_app(out).services) == 50
    assert "50 services" in capsys.readouterr().out
    assert main(["--services", "1", "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0

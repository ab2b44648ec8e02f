"""Read a Prometheus text endpoint into {(name, labels): value} for tests and summaries."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout: float = 5.0) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def histogram_quantile(
    samples: dict[tuple[str, frozenset], float], name: str, q: float, **labels: str
) -> float | None:
    """Quantile `q` of histogram `name` (summed over other labels), interpolated linearly
    inside the bucket as Prometheus' histogram_quantile does; None without observations."""
    want = set(labels.items())
    buckets: dict[float, float] = {}
    for (n, ls), value in samples.items():
        if n != f"{name}_bucket" or not want <= set(ls):
            continue
        le = float(dict(ls)["le"])
        buckets[le] = buckets.get(le, 0.0) + value
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count == 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bucket: its bound is what we know
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return lower

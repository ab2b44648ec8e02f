"""Read a Prometheus text endpoint into {(name, labels): value} for tests and summaries."""

from __future__ import annotations

import contextlib
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


class Scraper:
    """Scrapes several endpoints, keeping each one's last good answer: a service that is
    restarting or has exited still reports the totals it had."""

    def __init__(self, urls: dict[str, str], timeout: float = 2.0) -> None:
        self.urls = urls
        self.timeout = timeout
        self.last: dict[str, dict[tuple[str, frozenset], float]] = {}

    def get(self, name: str) -> dict[tuple[str, frozenset], float]:
        with contextlib.suppress(OSError):
            self.last[name] = scrape(self.urls[name], timeout=self.timeout)
        return self.last.get(name, {})

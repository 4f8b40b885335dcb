"""``/metrics`` of a fleet's daemon: every sample labelled with ``host``.

Each daemon counts what it executed; Prometheus scrapes them all, and the label keeps
their series apart (and sums them with ``sum without (host)``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric


class HostLabelled:
    """A collector: the metrics of ``registry`` with ``host="…"`` added to each sample."""

    def __init__(self, registry: CollectorRegistry, host: str) -> None:
        self.registry, self.host = registry, host

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            for sample in metric.samples:
                labelled.add_sample(sample.name, {**sample.labels, "host": self.host},
                                    sample.value, sample.timestamp, sample.exemplar)
            yield labelled

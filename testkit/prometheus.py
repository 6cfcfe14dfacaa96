"""Reading a process's ``/metrics`` as Prometheus would: the text format, parsed by
``prometheus_client``'s own parser (a page that does not parse fails the test)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "scrape"]


class Samples(Mapping[tuple[str, frozenset[tuple[str, str]]], float]):
    """Every sample of one scrape: (name, labels) -> value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._values = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __getitem__(self, key: tuple[str, frozenset[tuple[str, str]]]) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[tuple[str, frozenset[tuple[str, str]]]]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_value(self, name: str, **labels: str) -> float | None:
        """The sample ``name`` with exactly ``labels``, or None."""
        return self._values.get((name, frozenset(labels.items())))

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include ``labels`` (0 if none)."""
        wanted = set(labels.items())
        return sum(value for (found, tags), value in self._values.items() if found == name and wanted <= tags)


async def scrape(base_url: str, *, timeout: float = 10.0) -> Samples:
    """GET ``<base_url>/metrics``, checked to be Prometheus's text format."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.get(f"{base_url}/metrics") as response:
            assert response.status == 200, (response.status, await response.text())
            assert response.headers["Content-Type"].startswith("text/plain; version="), response.headers
            return Samples(await response.text())

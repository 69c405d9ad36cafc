"""The backends every contract test runs against: the embedded SQLite store and a real Elasticsearch.

Each backend is a factory in `BACKENDS` taking pytest's request, `tmp_path` and the clock, returning an empty
store; the `store` fixture runs a test once per backend. `second_store` opens another store on the same data
(the same SQLite file, the same Elasticsearch prefix), as a second process would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from correlator.store import Store
from correlator.store.elasticsearch import ElasticsearchStore
from correlator.store.sqlite import SqliteStore

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z; T0 % 60_000 == 20_000
RECEIVED_MS = T0 + 86_400_000

StoreFactory = Callable[[pytest.FixtureRequest, Path, Callable[[], int]], Store]


def _elasticsearch(request: pytest.FixtureRequest, tmp_path: Path, clock: Callable[[], int]) -> Store:
    url = request.getfixturevalue("elasticsearch_url")
    prefix = f"socctl-test-{uuid.uuid4().hex[:12]}"
    opened = ElasticsearchStore(url, prefix=prefix, clock=clock)
    request.addfinalizer(lambda: ElasticsearchStore(url, prefix=prefix).drop_all())
    return opened


BACKENDS: dict[str, StoreFactory] = {
    "sqlite": lambda request, tmp_path, clock: SqliteStore(tmp_path / "socctl.db", clock=clock),
    "elasticsearch": _elasticsearch,
}


def reopen(store: Store) -> Store:
    """Another store on the same data as `store`."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    if isinstance(store, ElasticsearchStore):
        return ElasticsearchStore(store.url, prefix=store.prefix)
    raise TypeError(f"cannot reopen {store!r}")


@pytest.fixture(params=sorted(BACKENDS), ids=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](request, tmp_path, lambda: RECEIVED_MS) as opened:
        yield opened


@pytest.fixture
def second_store(store: Store) -> Iterator[Store]:
    with reopen(store) as other:
        yield other

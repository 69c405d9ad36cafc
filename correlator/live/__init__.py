"""The running engine (`socctl run`): configuration (config), intake of network messages (intake), the asyncio
runner over the same stages as `socctl ingest` (runner), Prometheus metrics (metrics) and the assembly of it
all from a configuration (app). Nothing happens at import time."""

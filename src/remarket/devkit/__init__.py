"""The developer kit: what tests, benchmarks and the demo share to run remarket for real.

- `broker`: the local Apache Kafka broker (deploy/kafka/local_broker.py, standard library only,
  so scripts run it before remarket is installed; this is the one way Python code imports it).
- `workers`: a `remarket worker` process: start, readiness, HTTP, kill/stop, CPU and memory.
- `metrics`: reading a Prometheus text exposition.
- `sizing`: the state-size measurement behind docs/deployment.md.

Not used by the worker. Needs a remarket checkout (the broker lives in deploy/).
"""

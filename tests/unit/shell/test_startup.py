"""A worker is ready as soon as its table is restored and the broker has answered, and a clean
stop ends as soon as everything has stopped: neither waits for a timer."""
from __future__ import annotations

import asyncio

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell.app import BROKER_PROBE_SECONDS, Worker
from remarket.shell.faust_app import TablesDeclaredBeforeStart


def _worker(tmp_path) -> Worker:
    return Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog())


def test_the_broker_is_probed_when_the_worker_starts_then_every_interval(tmp_path):
    """faust's timers sleep their interval before their first call: readiness, which waits for
    the broker's first answer, came 2 s after the worker could have been ready."""
    async def run() -> tuple[list[str], float, bool]:
        worker = _worker(tmp_path)
        assert any(getattr(task, "__wrapped__", None) == worker._watch_broker for task in worker.app._app_tasks)
        steps: list[str] = []

        class Broker:
            async def probe(self) -> bool:
                steps.append("probe")
                return len(steps) == 1  # answers once, then is gone

            async def stop(self) -> None:  # its client's tasks must not outlive the worker
                steps.append("closed")

        async def sleep(seconds: float) -> None:
            steps.append(f"sleep {seconds}")
            if steps.count("probe") == 2:
                worker.app._stopped.set()  # the worker stops: the loop ends

        worker.broker_watch, worker.app.sleep = Broker(), sleep
        await worker._watch_broker()
        gauge = worker.metrics.broker_reachable._value.get()
        return steps, gauge, worker.app.should_stop

    steps, gauge, stopped = asyncio.run(run())
    assert steps == ["probe", f"sleep {BROKER_PROBE_SECONDS}", "probe", f"sleep {BROKER_PROBE_SECONDS}", "closed"]
    assert gauge == 0 and stopped  # the last answer is what the gauge says


def test_the_table_manager_starts_its_tables_without_faust_s_one_second_sleep(tmp_path):
    async def run() -> list[str]:
        worker = _worker(tmp_path)
        tables = worker.app.tables
        assert isinstance(tables, TablesDeclaredBeforeStart)
        assert worker.table.name in tables  # declared before the app starts: nothing to wait for
        steps: list[str] = []

        async def sleep(seconds: float) -> None:
            steps.append(f"sleep {seconds}")

        async def update_channels() -> None:
            steps.append("channels")

        class Recovery:
            async def start(self) -> None:
                steps.append("recovery")

        tables.sleep, tables._update_channels, tables._recovery = sleep, update_channels, Recovery()
        await tables.on_start()
        return steps

    assert asyncio.run(run()) == ["channels", "recovery"]


def test_the_process_ends_a_tenth_of_a_second_after_everything_stopped(monkeypatch):
    """mode's worker waited 1 s more after its services had stopped (`_sentinel_task`)."""
    from remarket.shell import stopping

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(stopping.asyncio, "sleep", sleep)
    asyncio.run(stopping.Worker._sentinel_task(object()))
    assert slept == [stopping.EXIT_SETTLE_SECONDS] and stopping.EXIT_SETTLE_SECONDS <= 0.1


def test_the_long_lived_heap_is_frozen_when_the_app_starts_not_at_the_first_ready_tick(tmp_path):
    """Records flow before the first tick (5 s) finds the worker ready; until the heap was
    frozen there, the drained states made each full collection longer (docs/benchmarks.md)."""
    import gc

    thresholds = gc.get_threshold()

    async def run() -> tuple[bool, bool, tuple[int, int, int]]:
        worker = _worker(tmp_path)
        assert any(getattr(task, "__wrapped__", None) == worker._start_heap for task in worker.app._app_tasks)
        before = worker.heap.started
        try:
            await worker._start_heap()
            return before, worker.heap.started, gc.get_threshold()
        finally:
            worker.heap.stop()
            gc.set_threshold(*thresholds)

    before, started, set_thresholds = asyncio.run(run())
    assert (before, started) == (False, True)
    assert set_thresholds == Settings(kafka_bootstrap="x:1").gc_thresholds

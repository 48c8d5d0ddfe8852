"""Timing of a worker's commits, broker round trips and garbage collections, for latency work.

    PYTHONPATH=bench/trace:src BENCH_TRACE_DIR=/tmp/trace .venv/bin/python bench/run.py --skip ...

Python imports this `sitecustomize` in every process started with it on the path (the bench's
workers inherit the environment). With BENCH_TRACE_DIR set, each process appends lines
`<what> <perf_counter> <ms>` to `<dir>/commit-<pid>.log`: the consumer's commit and its phases,
aiokafka's transaction round trips and retry back-offs (with TxnOffsetCommit's error names),
records that took over 3 ms, each keyed record's age when its handling began (`record-age`: now
less the producer's timestamp), due-work rounds, and collections over 2 ms. BENCH_TRACE_GC
("700,10,10") sets the collector's thresholds for an experiment. Summarise with e.g.
`awk '{n[$1]++; s[$1]+=$3} END {for (k in n) print k, n[k], s[k]/n[k]}' <file>`.
Wraps private functions of remarket, faust and aiokafka: a measuring aid, never used in production.
"""
import os, time, functools
if os.environ.get("BENCH_TRACE_DIR"):
    _f = open(os.path.join(os.environ["BENCH_TRACE_DIR"], f"commit-{os.getpid()}.log"), "a", buffering=1)
    def timed(cls, name, tag):
        orig = getattr(cls, name)
        @functools.wraps(orig)
        async def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return await orig(*a, **k)
            finally:
                _f.write(f"{tag} {t:.4f} {(time.perf_counter()-t)*1000:.2f}\n")
        setattr(cls, name, wrapper)
    import remarket.shell.delivery as d, remarket.shell.transactions as tr
    import faust.transport.consumer as fc
    import aiokafka.producer.producer as ap
    timed(d.BatchDeliveryConsumer, "force_commit", "force_commit")
    timed(tr.TransactionalSink, "before_commit", "before_commit")
    timed(tr.TransactionalSink, "while_handling", "while_handling")
    timed(fc.Consumer, "_commit_offsets", "faust_commit_offsets")
    timed(fc.Consumer, "_handle_attached", "handle_attached")
    timed(ap.AIOKafkaProducer, "send_offsets_to_transaction", "send_offsets")
    timed(ap.AIOKafkaProducer, "commit_transaction", "commit_txn")
    timed(ap.AIOKafkaProducer, "flush", "flush")
if os.environ.get("BENCH_TRACE_DIR"):
    import aiokafka.producer.sender as snd
    for _cls in (snd.AddPartitionsToTxnHandler, snd.AddOffsetsToTxnHandler, snd.TxnOffsetCommitHandler, snd.EndTxnHandler):
        def _mk(cls):
            orig = cls.handle_response
            def hr(self, resp):
                b = orig(self, resp)
                if b is not None:
                    _f.write(f"backoff-{cls.__name__} {time.perf_counter():.4f} {b*1000:.1f}\n")
                return b
            cls.handle_response = hr
        _mk(_cls)
    _origdo = snd.BaseHandler.do
    async def _do(self, node_id):
        t = time.perf_counter()
        r = await _origdo(self, node_id)
        _f.write(f"rtt-{type(self).__name__} {t:.4f} {(time.perf_counter()-t)*1000:.2f}\n")
        return r
    snd.BaseHandler.do = _do
if os.environ.get("BENCH_TRACE_DIR"):
    import aiokafka.errors as _E
    _o = snd.TxnOffsetCommitHandler.handle_response
    def _hr(self, resp):
        for topic, parts in resp.errors:
            for p, code in parts:
                if code: _f.write(f"txnoffset-error-{_E.for_code(code).__name__} {time.perf_counter():.4f} 0\n")
        return _o(self, resp)
    snd.TxnOffsetCommitHandler.handle_response = _hr
if os.environ.get("BENCH_TRACE_DIR"):
    import remarket.shell.handling as _h, remarket.shell.due_work as _dw, gc as _gc
    _oh = _h.RecordHandler.handle_or_stop
    async def _hos(self, message):
        t = time.perf_counter()
        try:
            return await _oh(self, message)
        finally:
            d = (time.perf_counter() - t) * 1000
            if d > 3: _f.write(f"slow-record-{message.topic.split('.')[-1]} {t:.4f} {d:.2f}\n")
            if message.key is not None and message.timestamp:  # how old the record was when its handling began
                _f.write(f"record-age {t:.4f} {(time.time() - (time.perf_counter() - t) - message.timestamp) * 1000:.2f}\n")
    _h.RecordHandler.handle_or_stop = _hos
    timed(_dw.DueWork, "fire", "duework_fire")
    _gcs = {}
    def _gccb(phase, info):
        if phase == "start": _gcs["t"] = time.perf_counter()
        else:
            d = (time.perf_counter() - _gcs.get("t", time.perf_counter())) * 1000
            if d > 2: _f.write(f"gc-gen{info['generation']} {time.perf_counter():.4f} {d:.2f}\n")
            if info["generation"] == 2:  # how many objects it walked (survivors, before any freeze) and what is frozen
                _f.write(f"gc-gen2-walked {time.perf_counter():.4f} {len(_gc.get_objects(2)) + info['collected']}"
                         f" frozen {_gc.get_freeze_count()}\n")
    _gc.callbacks.append(_gccb)
if os.environ.get("BENCH_TRACE_GC"):
    import gc as _gc2
    _gc2.set_threshold(*map(int, os.environ["BENCH_TRACE_GC"].split(",")))

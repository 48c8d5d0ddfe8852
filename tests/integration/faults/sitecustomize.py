"""Fault injection for worker processes started by the tests (on PYTHONPATH only there).

REMARKET_TEST_DROP_CHANGELOG="PARTITION:OFFSET[,PARTITION:OFFSET...]" makes faust's consumer
lose the delivery of those changelog records once, after their fetch moved the consumer's
position past them: what a delivery cancelled by a flow suspension, or dropped behind a stale
read offset, does inside faust. faust's recovery then waits, guesses the partition complete
(`detect_aborted_tx`) and runs without the record; remarket's own restore does not read
through faust's consumer at all.
"""
import os

_spec = os.environ.get("REMARKET_TEST_DROP_CHANGELOG", "")
if _spec:
    import faust.transport.conductor as _conductor

    _targets = {tuple(int(x) for x in item.split(":")) for item in _spec.split(",") if item}
    _compile = _conductor.Conductor._compile_message_handler

    def _compile_dropping(self):
        handler = _compile(self)

        async def on_message(message):
            where = (message.partition, message.offset)
            if message.topic.endswith("-changelog") and where in _targets:
                _targets.discard(where)
                print(f"fault injected: dropped changelog record {message.topic}[{where[0]}]@{where[1]}",
                      flush=True)
                return None
            return await handler(message)

        return on_message

    _conductor.Conductor._compile_message_handler = _compile_dropping

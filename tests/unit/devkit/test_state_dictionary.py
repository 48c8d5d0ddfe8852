"""The tool that made the state dictionary: simulated traffic through the real pipeline gives
states as the worker stores them, and a dictionary trained on them compresses states it has not
seen better than zstd alone."""
from __future__ import annotations

import zstandard

from remarket.devkit.state_dictionary import train, training_states


def test_a_dictionary_trained_on_simulated_states_compresses_unseen_states_better():
    samples = training_states(customers=400, events=4_000)
    assert len(samples) > 300 and all(sample.startswith(b"{") for sample in samples)
    unseen = training_states(customers=200, events=2_000, seed=5, history_days=0)
    dictionary = zstandard.ZstdCompressionDict(train(samples, size=4_096))
    with_dictionary = sum(len(zstandard.ZstdCompressor(level=1, dict_data=dictionary).compress(s)) for s in unseen)
    alone = sum(len(zstandard.ZstdCompressor(level=1).compress(s)) for s in unseen)
    assert with_dictionary < 0.8 * alone, (with_dictionary, alone)

"""One module per marketing rule: what it keeps pending, when it fires, what cancels it."""

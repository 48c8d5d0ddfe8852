"""The pure domain core: no Kafka, no Faust. The same code serves live streams and replay."""

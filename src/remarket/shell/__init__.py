"""The only package that imports faust / aiokafka: topics, tables, agents, timers, views."""

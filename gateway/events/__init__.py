"""Governed events: CloudEvents in, consumer groups out, over one Redis stream per contract major.

    envelope.py       parse structured, binary and batch CloudEvents; validate envelope and data
    stream.py         the Redis stream of a contract major: append once, read through groups, ack
    dead_letters.py   refused and undeliverable events: list, replay, rewind, replay a time range
    http.py           /events/{contract}/v{major}: the routes, run through the governed pipeline
    admin.py          /registry/events/…: the operators' API over dead letters and groups
"""

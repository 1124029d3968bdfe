"""A Program parses its schedules and places its static transfers once, however many reports and
traces it is asked for, and a fresh copy gives the same bytes."""

from __future__ import annotations

import dataclasses

import pimc.api as api
from pimc.mapping.schedule import Schedule
from pimc.trace import trace_json


def test_schedules_and_transfers_are_computed_once(tiny_program, monkeypatch):
    program = dataclasses.replace(tiny_program)  # same fields, nothing computed yet
    parsed, placed = [], []
    from_json, transfer_events = Schedule.from_json.__func__, api.transfer_events

    def parse(cls, data):
        parsed.append(data)
        return from_json(cls, data)

    def place(*args):
        placed.append(args)
        return transfer_events(*args)

    monkeypatch.setattr(Schedule, "from_json", classmethod(parse))
    monkeypatch.setattr(api, "transfer_events", place)
    reports = [program.report().to_json() for _ in range(3)]
    traces = [trace_json(program.trace()) for _ in range(2)]
    assert len(parsed) == len(program.schedules) == 2  # prefill, decode
    assert len(placed) == 2  # one call of each phase (the report); prefill then decode (the trace)
    assert reports[0] == reports[1] == reports[2] == tiny_program.report().to_json()
    assert traces[0] == traces[1] == trace_json(tiny_program.trace())

"""manage.py benchmark_stream, small: the whole path runs (fake KIS WebSocket → session → streamer → local bus
→ clients in another process) and the figures come out. No speed is asserted (CI machines vary)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def test_a_small_run_prints_the_figures_as_json():
    out = io.StringIO()
    call_command("benchmark_stream", "--size", "small", "--via", "bus", "--bus", "local", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert {"ticks_per_s", "p50_ms", "p99_ms", "clients", "symbols"} <= set(result)
    assert result["ticks_per_s"] > 0 and result["clients"] == 2 and result["symbols"] == 4
    assert 0 <= result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["streamer_in_per_s"] > 0 and result["via"] == "bus"


def test_more_symbols_than_one_session_carries_are_refused():
    with pytest.raises(CommandError, match="40"):
        call_command("benchmark_stream", "--symbols", "41", "--json", stdout=io.StringIO())

"""`flask cases verify` prints chain and replay verdicts and fails on a problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask


def test_verify_one_and_all(app: Flask, published: None, point: Callable[..., str],
                            send: Callable[..., dict[str, Any]]) -> None:
    case_no = send("gas", "ch4_lel", 30, point("VC-1", "gas"))["case_no"]
    send("gas", "ch4_lel", 120, "VC-1")
    runner = app.test_cli_runner()
    one = runner.invoke(args=["cases", "verify", case_no])
    assert one.exit_code == 0, one.output
    assert f"{case_no}\tchain intact\treplay consistent" in one.output
    everything = runner.invoke(args=["cases", "verify", "--all"])
    assert everything.exit_code == 0 and "0 with problems" in everything.output
    assert runner.invoke(args=["cases", "verify"]).exit_code != 0
    assert runner.invoke(args=["cases", "verify", "NO-SUCH"]).exit_code != 0

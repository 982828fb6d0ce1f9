"""The negative-feedback alert: the share of negative ratings over the window, fired to the same sinks as every
other rule (a Python callback here), pointing at the rated turn's trace; from the settings and from a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import chatobs
from chatobs.config import ConfigError
from chatobs.processing.alerts.rules import load_rules


def test_share_of_negative_feedback_over_the_window_alerts(make_capture: Any) -> None:
    cap = make_capture(alerts=True, alert_negative_feedback=0.5, alert_negative_feedback_min_count=4)
    got: list[Any] = []
    remove = chatobs.on_alert(got.append)
    stage = next(s for s in cap.runtime.stages if s.name == "alerts")
    try:
        traces = [f"{i + 1:032x}" for i in range(6)]
        for tid, value in zip(traces, [True, True, False, True, False, False], strict=True):
            chatobs.feedback(tid, value)
        assert chatobs.flush(10) and stage.join(5)
        # The 6th rating makes it 3 of 6 = 50%: not over the threshold, so nothing yet.
        assert [a for a in got if a.rule == "negative_feedback"] == []
        chatobs.feedback(f"{7:032x}", False)  # 4 of 7
        assert chatobs.flush(10) and stage.join(5)
    finally:
        remove()
    fired = [a for a in got if a.rule == "negative_feedback"]
    assert len(fired) == 1
    alert = fired[0]
    assert alert.trace_id == f"{7:032x}" and alert.figures["negative"] == 4 and alert.figures["ratings"] == 7
    assert "negative feedback 57%" in alert.message


def test_yaml_rule_and_its_checks(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "rules:\n- {name: thumbs, type: negative_feedback, threshold: 0.2, window_s: 600, rating: user_feedback}\n"
    )
    [rule], _ = load_rules(path)
    assert (rule.type, rule.threshold, rule.window_s, rule.rating) == ("negative_feedback", 0.2, 600, "user_feedback")
    path.write_text("rules:\n- {name: thumbs, type: negative_feedback, threshold: 2}\n")
    with pytest.raises(ConfigError, match="expected a fraction"):
        load_rules(path)

"""The demo (`make demo`) runs end to end, here with a shortened training."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from adapter_dsl import demo  # noqa: E402


def test_demo_main_runs_with_few_steps(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADAPTER_DSL_DEMO_STEPS", "60")
    threads = torch.get_num_threads()
    assert demo.main([]) == 0
    assert torch.get_num_threads() == threads  # restored
    out = capsys.readouterr().out
    assert "lora[r=16, alpha=32]" in out and "→ mam" in out
    assert "did you mean 'alpha'?" in out and "^^^^^" in out  # the bad config, located
    assert "SeqBnConfig" in out and "outputs match" in out


def test_demo_figures() -> None:
    buffer = io.StringIO()
    result = demo.run_demo(steps=60, out=buffer)
    assert result["match"] and result["max_diff"] < 1e-5
    assert result["loss_last"] < result["loss_first"]
    assert result["acc_after"] > result["acc_before"]
    assert result["adapter_bytes"] + result["head_bytes"] < result["full_bytes"] / 4
    assert "0/60" in buffer.getvalue() or "60/60" in buffer.getvalue()

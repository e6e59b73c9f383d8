"""Shared job runner of the model benchmarks: one framework-specific worker script imports this.

The same code runs in every environment (``.venv`` with transformers 5, ``.venv-ref`` with
transformers 4.57), so it only uses APIs both versions have. A worker supplies a
:class:`Framework` (how to add, activate, train, merge and save an adapter); everything else
(building the model, inputs, timing, memory) is here, identical for all contenders.

Protocol: a job is a JSON object; a result is one line ``RESULT <json>`` on stdout (anything else
a library prints is ignored by the driver). ``worker.py '<job json>'`` runs one job in a fresh
process; ``worker.py --serve`` reads one job per line on stdin and answers each, so that one warm
process can serve many alternating rounds.

Job keys: ``kind`` (``add``, ``forward_train``, ``memory``, ``save``, ``ping``), ``method``
(``bare``: no adapter), ``merged`` (``forward_train`` of lora: also time merged inference),
``model`` (BertConfig overrides), ``batch``, ``seq``, ``threads``, ``reps``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
import resource
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

NAME = "bench"
#: BertConfig() defaults: 12 layers, 768 wide, 12 heads, 3072 intermediate, 30522 vocabulary.
FULL_MODEL: dict[str, Any] = {}


class Framework:
    """What differs between adapter_dsl, the reference and PEFT. ``model`` is a bare BertModel."""

    label = "?"

    def setup(self) -> None:
        """Import the framework (untimed)."""

    def versions(self) -> dict[str, str]:
        import torch
        import transformers

        return {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    def methods(self) -> tuple[str, ...]:
        raise NotImplementedError

    def add(self, model: Any, method: str) -> Any:
        """Add adapter ``NAME`` for ``method``; return the module to call (may be a wrapper)."""
        raise NotImplementedError

    def activate(self, handle: Any) -> None:
        """Make the adapter active for inference."""

    def train(self, handle: Any) -> None:
        """Freeze everything but the adapter, activate it, training mode."""

    def merge(self, handle: Any) -> Any:
        """Fold the (LoRA) adapter into the weights; return the module to call."""
        raise NotImplementedError

    def save(self, handle: Any, directory: Path) -> list[Path]:
        """Save the adapter; return the weight file(s) written."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# model, inputs, steps


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # settable only before the first parallel work
        torch.set_num_interop_threads(1)


def build_model(overrides: dict[str, Any]) -> Any:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    # Default attention implementation of each transformers version (what users get); every
    # result records which one ran.
    return BertModel(BertConfig(**overrides)).eval()


def make_inputs(model: Any, batch: int, seq: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, model.config.vocab_size, (batch, seq), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def hidden_of(out: Any) -> Any:
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def forward_once(handle: Any, inputs: dict[str, Any]) -> float:
    import torch

    with torch.no_grad():
        t0 = time.perf_counter()
        handle(**inputs)
        return time.perf_counter() - t0


def trainable(handle: Any) -> list[Any]:
    return [p for p in handle.parameters() if p.requires_grad]


def make_train_step(handle: Any, inputs: dict[str, Any]) -> Callable[[], float]:
    """Forward + backward + AdamW step over the trainable parameters; returns its seconds."""
    import torch

    params = trainable(handle)
    opt = torch.optim.AdamW(params, lr=1e-4) if params else None

    def step() -> float:
        t0 = time.perf_counter()
        loss = hidden_of(handle(**inputs)).float().pow(2).mean()
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def bare_train_setup(model: Any) -> None:
    """Bare-model "training" floor: nothing trainable, but the backward pass runs through every
    layer down to the embeddings' output (what any adapter below the first layer also costs)."""
    for p in model.parameters():
        p.requires_grad_(False)
    model.embeddings.register_forward_hook(lambda _m, _i, out: out.requires_grad_(True))
    model.train()


def count(params: list[Any]) -> int:
    return sum(p.numel() for p in params)


# ---------------------------------------------------------------------------------------------
# memory (Linux): resident set size, with the high-water mark reset before the measured part


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# jobs


class Runner:
    def __init__(self, fw: Framework) -> None:
        self.fw = fw
        self._base: dict[str, Any] = {}

    def base(self, overrides: dict[str, Any]) -> Any:
        key = json.dumps(overrides, sort_keys=True)
        if key not in self._base:
            self._base = {key: build_model(overrides)}  # keep one pristine model per process
        return self._base[key]

    def fresh(self, job: dict[str, Any]) -> Any:
        return copy.deepcopy(self.base(job.get("model", FULL_MODEL)))

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        set_threads(int(job.get("threads", 2)))
        kind = job["kind"]
        if kind == "ping":
            return {"methods": list(self.fw.methods()), "versions": self.fw.versions()}
        fn = getattr(self, "job_" + kind)
        out = fn(job)
        gc.collect()
        base = next(iter(self._base.values()), None)
        if base is not None:
            out["attention"] = getattr(base.config, "_attn_implementation", None)
        return out

    # add_adapter on a fresh copy of the bare model, repeated
    def job_add(self, job: dict[str, Any]) -> dict[str, Any]:
        times, n = [], 0
        for _ in range(int(job.get("reps", 3))):
            model = self.fresh(job)
            gc.collect()
            t0 = time.perf_counter()
            handle = self.fw.add(model, job["method"])
            times.append(time.perf_counter() - t0)
            self.fw.train(handle)
            n = count(trainable(handle))
            del handle, model
        return {"seconds": times, "trainable_params": n}

    # forward latency (eval, no_grad) and one training step, on one fresh adapted model
    def job_forward_train(self, job: dict[str, Any]) -> dict[str, Any]:
        reps = int(job.get("reps", 2))
        model = self.fresh(job)
        inputs = make_inputs(model, int(job["batch"]), int(job["seq"]))
        method = job["method"]
        if method == "bare":
            handle = model
        else:
            handle = self.fw.add(model, method)
            self.fw.activate(handle)
        handle.eval()
        fwd = [forward_once(handle, inputs) for _ in range(reps)]
        if method == "bare":
            bare_train_setup(model)
        else:
            self.fw.train(handle)
        n = count(trainable(handle))
        step = make_train_step(handle, inputs)
        train = [step() for _ in range(reps)]
        out = {"forward_seconds": fwd, "train_seconds": train, "trainable_params": n}
        if job.get("merged"):  # then inference with the (trained) adapter merged into the weights
            handle.eval()
            self.fw.activate(handle)
            merged = self.fw.merge(handle)
            merged.eval()
            out["merged_forward_seconds"] = [forward_once(merged, inputs) for _ in range(reps)]
        return out

    # peak memory of training steps; meant for a fresh process per job
    def job_memory(self, job: dict[str, Any]) -> dict[str, Any]:
        model = build_model(job.get("model", FULL_MODEL))
        inputs = make_inputs(model, int(job["batch"]), int(job["seq"]))
        method = job["method"]
        if method == "bare":
            bare_train_setup(model)
            handle = model
        else:
            handle = self.fw.add(model, method)
            self.fw.train(handle)
        step = make_train_step(handle, inputs)
        gc.collect()
        resettable = reset_peak_rss()
        before_kb = _status_kb("VmRSS")
        for _ in range(int(job.get("reps", 2))):  # the first step also creates AdamW's state
            step()
        peak_kb = (
            _status_kb("VmHWM")
            if resettable
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        )
        return {
            "rss_before_mb": before_kb / 1024,
            "peak_rss_mb": peak_kb / 1024,
            "step_peak_mb": (peak_kb - before_kb) / 1024,
            "hwm_reset": resettable,
            "process_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "trainable_params": count(trainable(handle)),
            "attention": getattr(model.config, "_attn_implementation", None),
        }

    # size of the saved adapter against its trainable parameters
    def job_save(self, job: dict[str, Any]) -> dict[str, Any]:
        model = self.fresh(job)
        handle = self.fw.add(model, job["method"])
        self.fw.train(handle)
        params = trainable(handle)
        with tempfile.TemporaryDirectory() as tmp:
            files = self.fw.save(handle, Path(tmp) / "adapter")
            size = sum(f.stat().st_size for f in files)
            names = [f.name for f in files]
        return {
            "file_bytes": size,
            "files": names,
            "trainable_params": count(params),
            "param_bytes": sum(p.numel() * p.element_size() for p in params),
        }


def main(fw: Framework, argv: list[str]) -> int:
    fw.setup()
    runner = Runner(fw)

    def answer(job: dict[str, Any]) -> None:
        try:
            result = {"ok": True, **runner.run(job)}
        except Exception as exc:  # reported to the driver, which shows it in the report
            result = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(),
            }
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()

    if argv[1:2] == ["--serve"]:
        for line in sys.stdin:
            if line.strip():
                answer(json.loads(line))
        return 0
    if len(argv) != 2:
        print(f"usage: {argv[0]} '<job json>' | --serve", file=sys.stderr)
        return 2
    answer(json.loads(argv[1]))
    return 0

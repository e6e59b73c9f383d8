"""Distributed data parallel training on CPU (gloo): torchrun and accelerate launch, 2 processes."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

from safetensors.torch import load_file  # noqa: E402

SCRIPT = Path(__file__).with_name("ddp_train.py")
ROOT = Path(__file__).resolve().parents[2]
STEPS = 8
TIMEOUT = 240  # two processes importing torch+transformers on a busy 2-core machine


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # never depend on the hostname's resolution
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _launch(cmd: list[str]) -> None:
    try:
        done = subprocess.run(
            cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{cmd[2]} timed out after {TIMEOUT} s:\n{exc.stdout!r}\n{exc.stderr!r}")
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def _weights(directory: Path) -> dict[str, Any]:
    tensors = load_file(str(directory / "task" / "adapter_model.safetensors"))
    tensors.update(load_file(str(directory / "head.safetensors")))
    return tensors


def _single_process(out: Path) -> dict[str, Any]:
    _script().train_ddp(out, STEPS)
    return _weights(out / "rank0")


@pytest.mark.slow
def test_torchrun_two_ranks_match_each_other_and_one_process(tmp_path: Path) -> None:
    _launch(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--nnodes=1",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            str(SCRIPT),
            str(tmp_path / "ddp"),
            f"--steps={STEPS}",
        ]
    )
    rank0, rank1 = _weights(tmp_path / "ddp" / "rank0"), _weights(tmp_path / "ddp" / "rank1")
    single = _single_process(tmp_path / "single")
    assert set(rank0) == set(rank1) == set(single)
    assert any(".adapters.task." in k for k in rank0) and "classifier.weight" in rank0
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks disagree on {key}"
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=1e-5, msg=key)
    # Training moved the weights (the comparison is not between two untouched copies).
    assert float(rank0["classifier.bias"].abs().sum()) > 0


@pytest.mark.slow
def test_accelerate_launch_runs_adapter_trainer_on_two_ranks(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    out = tmp_path / "acc"
    _launch(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",  # the multi-process launcher (torchrun inside); CPU-only here
            "--num_processes=2",
            "--num_machines=1",
            "--mixed_precision=no",
            "--dynamo_backend=no",
            "--main_process_ip=127.0.0.1",
            f"--main_process_port={_free_port()}",
            str(SCRIPT),
            str(out),
            "--mode=trainer",
            "--steps=4",
        ]
    )
    assert (out / "world0").read_text() == (out / "world1").read_text() == "2"
    rank0, rank1 = _weights(out / "rank0"), _weights(out / "rank1")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks disagree on {key}"
    # One checkpoint (written by rank 0) with the adapter and both ranks' RNG states.
    ckpt = out / "trainer" / "checkpoint-4"
    names = {p.name for p in ckpt.iterdir()}
    assert {"task", "head.safetensors", "rng_state_0.pth", "rng_state_1.pth"} <= names
    assert "model.safetensors" not in names
    saved = _weights(ckpt)
    for key in rank0:
        assert torch.equal(saved[key], rank0[key]), key


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("ddp_train", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``torchrun`` launch of the FSDP2 mode: the plain loop, then AdapterTrainer."""
    out = tmp_path_factory.mktemp("fsdp")
    _launch(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--nnodes=1",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            str(SCRIPT),
            str(out),
            "--mode=fsdp",
            f"--steps={STEPS}",
        ]
    )
    return out


@pytest.mark.slow
def test_fsdp2_trains_like_one_process_and_rank0_saves_the_gathered_adapter(
    tmp_path: Path, fsdp_run: Path
) -> None:
    # Every rank gathered the shards; only rank 0 wrote, full tensors as from one process.
    assert not (fsdp_run / "rank1").exists()
    sharded = _weights(fsdp_run / "rank0")
    single = _single_process(tmp_path / "single")
    assert set(sharded) == set(single)
    assert any(".adapters.task." in k for k in sharded) and "classifier.weight" in sharded
    for key in sharded:
        assert sharded[key].shape == single[key].shape, key
        torch.testing.assert_close(sharded[key], single[key], rtol=0, atol=1e-5, msg=key)
    assert float(sharded["classifier.bias"].abs().sum()) > 0
    # load_trainable put each rank's shard back (resuming); saving again gives the same files.
    reloaded = _weights(fsdp_run / "reloaded")
    for key in sharded:
        assert torch.equal(reloaded[key], sharded[key]), key


@pytest.mark.slow
def test_adapter_trainer_checkpoints_and_resumes_a_fsdp2_model(
    tmp_path: Path, fsdp_run: Path
) -> None:
    # Rank 0 wrote each checkpoint: gathered adapter and head, the optimizer's full state by
    # parameter name, both ranks' RNG states; no base-model weights.
    ckpt = fsdp_run / "trainer" / f"checkpoint-{STEPS // 2}"
    names = {p.name for p in ckpt.iterdir()}
    assert {"task", "head.safetensors", "optimizer.pt", "scheduler.pt"} <= names
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= names and "model.safetensors" not in names
    optimizer = torch.load(ckpt / "optimizer.pt", weights_only=True)
    saved = _weights(ckpt)
    for key, tensor in saved.items():
        assert optimizer["state"][key]["exp_avg"].shape == tensor.shape, key  # not a shard
    # One process, no sharding: the same run, and a resume of the sharded run's checkpoint.
    _script().train_sharded_trainer(tmp_path, STEPS, resume_from=fsdp_run / "trainer")
    single = _weights(tmp_path / "trainer-full")
    sharded, resumed = _weights(fsdp_run / "trainer-full"), _weights(fsdp_run / "trainer-resumed")
    assert set(sharded) == set(resumed) == set(single)
    for key in sharded:
        # Resuming on the sharded model continues the run exactly (weights, AdamW moments, step).
        assert torch.equal(resumed[key], sharded[key]), key
        torch.testing.assert_close(sharded[key], single[key], rtol=0, atol=1e-5, msg=key)
        # The middle checkpoint is not the end (the comparison is between trained weights).
        assert not torch.equal(saved[key], sharded[key]), key
    across = _weights(tmp_path / "trainer-resumed")  # sharded checkpoint, resumed unsharded
    for key in single:
        torch.testing.assert_close(across[key], single[key], rtol=0, atol=1e-5, msg=key)

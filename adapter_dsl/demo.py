"""A tour of adapter_dsl in under a minute on a laptop CPU: ``python -m adapter_dsl.demo``.

1. validates a few config strings (printed back in canonical form) and one bad one (its located
   error);
2. builds a tiny BERT classifier from a config object (random weights, nothing is downloaded);
3. adds a bottleneck adapter and trains only it and the classification head on a synthetic task
   ("does token 5 occur in the sequence?"), with accuracy before and after;
4. prints the parameter table, the saved adapter's size next to the whole model's;
5. loads the saved adapter into a fresh copy of the base model and checks the outputs match.

``--steps N`` (or the ``ADAPTER_DSL_DEMO_STEPS`` environment variable) shortens the training.
The model and task helpers (:func:`tiny_classifier`, :func:`synthetic_batch`) are reused by the
test-suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import torch
    from transformers import BertForSequenceClassification

__all__ = ["ADAPTER", "MARKER_TOKEN", "main", "synthetic_batch", "tiny_classifier"]

#: The adapter the demo trains (a ``seq_bn`` adapter with a bottleneck of 16 on hidden size 32).
ADAPTER = "seq_bn[reduction_factor=2]"
#: Label 1 means this token id occurs in the sequence.
MARKER_TOKEN = 5
VOCAB = 99
SEQ_LEN = 12
DEFAULT_STEPS = 300

GOOD_CONFIGS = (
    "pfeiffer",
    "lora[r=16, alpha=32]",
    "par_bn[reduction_factor={'default': 16, '1': 8}]",
    "prefix_tuning[bottleneck_size=800]|parallel",
)
BAD_CONFIG = "lora[r=8, alpah=16]"


def tiny_classifier(
    seed: int = 0, *, dropout: float = 0.1, num_labels: int = 2
) -> BertForSequenceClassification:
    """A 2-layer BERT (hidden size 32) with a classification head, built from a config object.

    ``initializer_range=0.2`` (instead of BERT's 0.02) gives the random attention layers enough
    signal to mix tokens, like a pretrained model's would; with the usual 0.02 nothing but the
    embeddings reaches the [CLS] position.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        initializer_range=0.2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    config.num_labels = num_labels
    return BertForSequenceClassification(config)


def synthetic_batch(
    n: int, generator: torch.Generator, *, length: int = SEQ_LEN
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences ``[CLS] t1 … t(length-1)`` and labels: 1 when ``MARKER_TOKEN`` occurs.

    Half the sequences (on average) are positives; in those, each position holds the marker with
    probability 0.3 (at least once). Other tokens are drawn from ``6 … VOCAB-1``.
    """
    import torch

    labels = torch.randint(0, 2, (n,), generator=generator)
    ids = torch.randint(MARKER_TOKEN + 1, VOCAB, (n, length), generator=generator)
    marks = torch.rand(n, length, generator=generator) < 0.3
    marks[:, 0] = False
    forced = torch.randint(1, length, (n,), generator=generator)
    marks[torch.arange(n), forced] = True
    marks &= labels[:, None].bool()
    ids[marks] = MARKER_TOKEN
    ids[:, 0] = 2  # [CLS]
    return ids, labels


def _accuracy(model: Any, ids: torch.Tensor, labels: torch.Tensor) -> float:
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = model(input_ids=ids).logits.argmax(-1)
    model.train(was_training)
    return float((predicted == labels).float().mean())


class _SimpleBar:
    """A minimal progress bar for when tqdm is not installed."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.n, self.stream, self.postfix = total, 0, stream, ""

    def update(self, k: int = 1) -> None:
        self.n += k
        filled = int(30 * self.n / max(self.total, 1))
        self.stream.write(
            f"\r  [{'#' * filled}{'.' * (30 - filled)}] {self.n}/{self.total} {self.postfix}"
        )
        self.stream.flush()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        self.stream.write("\n")


@contextmanager
def _progress(total: int, stream: TextIO) -> Iterator[Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        bar: Any = _SimpleBar(total, stream)
    else:
        bar = tqdm(total=total, file=stream, ncols=80, desc="  training", mininterval=0.25)
    try:
        yield bar
    finally:
        bar.close()


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def _show_configs(out: TextIO) -> None:
    from adapter_dsl import ConfigError, dumps, load

    print("1. Config strings, validated and printed back in canonical form", file=out)
    for text in GOOD_CONFIGS:
        cfg = load(text)
        print(f"  {text:<46} → {dumps(cfg)}", file=out)
        print(f"  {'':<46}   ({type(cfg).__name__})", file=out)
    print(f"\n  A bad one: {BAD_CONFIG}", file=out)
    try:
        load(BAD_CONFIG)
    except ConfigError as err:
        for line in str(err).splitlines():
            print(f"    {line}", file=out)
    else:  # pragma: no cover - the bad config is bad
        raise AssertionError(f"{BAD_CONFIG!r} was accepted")


def run_demo(
    steps: int = DEFAULT_STEPS, out: TextIO | None = None, workdir: Path | None = None
) -> dict[str, Any]:
    """Run the demo, printing to ``out`` (default: stdout); returns the figures it printed."""
    out = sys.stdout if out is None else out
    import torch
    from safetensors.torch import load_file, save_file

    from adapter_dsl.backend import (
        adapter_summary,
        add_adapter,
        format_summary,
        load_adapter,
        save_adapter,
        train_adapter,
    )

    started = time.perf_counter()
    _show_configs(out)

    print(
        "\n2. A tiny BERT classifier from a config object (random weights, no download)", file=out
    )
    model = tiny_classifier(seed=0)
    total = sum(p.numel() for p in model.parameters())
    print(f"  {type(model).__name__}: 2 layers, hidden size 32, {total:,} parameters", file=out)

    print(
        f"\n3. Add '{ADAPTER}' and train it with the head on 'does token {MARKER_TOKEN} occur?'",
        file=out,
    )
    add_adapter(model, "marker", ADAPTER)
    train_adapter(model, "marker")  # freezes the model, activates and unfreezes the adapter
    model.classifier.requires_grad_(True)  # the task head trains too
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    data = torch.Generator().manual_seed(1)
    test_ids, test_labels = synthetic_batch(512, torch.Generator().manual_seed(12345))
    acc_before = _accuracy(model, test_ids, test_labels)
    losses: list[float] = []
    with _progress(steps, out) as bar:
        for step in range(steps):
            ids, labels = synthetic_batch(32, data)
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if step % 10 == 9 or step == steps - 1:
                bar.set_postfix_str(f"loss {sum(losses[-10:]) / len(losses[-10:]):.3f}")
            bar.update(1)
    acc_after = _accuracy(model, test_ids, test_labels)
    window = max(1, min(20, steps // 5))
    loss_first = sum(losses[:window]) / window
    loss_last = sum(losses[-window:]) / window
    print(
        f"  loss      {loss_first:.3f} → {loss_last:.3f}  (mean of the first/last {window} steps)",
        file=out,
    )
    print(f"  accuracy  {acc_before:.1%} → {acc_after:.1%}  (512 held-out sequences)", file=out)

    print("\n4. Parameters", file=out)
    for line in format_summary(model).splitlines():
        print(f"  {line}", file=out)
    row = adapter_summary(model)[0]
    head = sum(p.numel() for p in model.classifier.parameters())
    print(
        f"  trained: {row['parameters']:,} adapter + {head:,} head = "
        f"{row['parameters'] + head:,} of {sum(p.numel() for p in model.parameters()):,} parameters",
        file=out,
    )

    model.eval()
    expected = model(input_ids=test_ids).logits.detach()
    with tempfile.TemporaryDirectory() if workdir is None else _keep(workdir) as tmp:
        root = Path(tmp)
        adapter_dir = save_adapter(model, "marker", root / "marker")
        save_file(
            {
                k: v.detach().contiguous()
                for k, v in model.classifier.state_dict(prefix="classifier.").items()
            },
            str(root / "head.safetensors"),
        )
        save_file(
            {k: v.detach().contiguous() for k, v in model.state_dict().items()},
            str(root / "full_model.safetensors"),
        )
        adapter_bytes = _dir_size(adapter_dir)
        head_bytes = (root / "head.safetensors").stat().st_size
        full_bytes = (root / "full_model.safetensors").stat().st_size
        print(f"\n  saved adapter ({adapter_dir.name}/): {_kib(adapter_bytes)}", file=out)
        print(f"  saved head (head.safetensors): {_kib(head_bytes)}", file=out)
        print(
            f"  the whole model in safetensors: {_kib(full_bytes)} "
            f"(adapter + head = {(adapter_bytes + head_bytes) / full_bytes:.1%} of it)",
            file=out,
        )

        print("\n5. Load the adapter into a fresh copy of the base model", file=out)
        fresh = tiny_classifier(seed=0).eval()  # stands in for the same pretrained checkpoint
        name = load_adapter(fresh, adapter_dir)  # activates it
        fresh.load_state_dict(load_file(str(root / "head.safetensors")), strict=False)
        with torch.no_grad():
            got = fresh(input_ids=test_ids).logits
        max_diff = float((got - expected).abs().max())
        match = bool(torch.allclose(got, expected, atol=1e-5))
        print(
            f"  load_adapter → '{name}'; max |Δlogit| = {max_diff:.2e}: "
            f"{'outputs match' if match else 'OUTPUTS DIFFER'}",
            file=out,
        )
    elapsed = time.perf_counter() - started
    print(f"\nDone in {elapsed:.1f} s.", file=out)
    return {
        "steps": steps,
        "loss_first": loss_first,
        "loss_last": loss_last,
        "acc_before": acc_before,
        "acc_after": acc_after,
        "adapter_bytes": adapter_bytes,
        "head_bytes": head_bytes,
        "full_bytes": full_bytes,
        "max_diff": max_diff,
        "match": match,
        "seconds": elapsed,
    }


@contextmanager
def _keep(path: Path) -> Iterator[str]:
    path.mkdir(parents=True, exist_ok=True)
    yield str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapter_dsl.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=int(os.environ.get("ADAPTER_DSL_DEMO_STEPS", DEFAULT_STEPS)),
        help=f"training steps (default {DEFAULT_STEPS}, or $ADAPTER_DSL_DEMO_STEPS)",
    )
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("The demo needs the torch extra: pip install 'adapter-dsl[torch]'", file=sys.stderr)
        return 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time to intra-op threads
    try:
        result = run_demo(max(1, args.steps))
    finally:
        torch.set_num_threads(threads)
    return 0 if result["match"] else 1


if __name__ == "__main__":
    sys.exit(main())

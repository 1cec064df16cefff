"""``amber-align align`` in a process that tests/test_kill_resume.py kills, plus the hooks the test needs.

Usage: python tests/scripts/kill_resume_align.py EVENTS.jsonl [--pause_after_checkpoint N]
       [--die_during_checkpoint N] [--die_during_final_save] -- ALIGN ARGS...

- every training micro-step appends ``{"step": global_step, "batch": fingerprint of input_ids}`` to EVENTS.jsonl
  (``record_batches``, also used in-process by the test), so the data order of runs can be compared;
- ``--pause_after_checkpoint N``: once ``checkpoint-N`` is complete, append ``{"saved": N}`` and wait (up to 120 s,
  or until a file ``EVENTS.jsonl.go`` appears) for the test to send SIGTERM or SIGKILL;
- ``--die_during_checkpoint N``: SIGKILL itself in the middle of writing ``checkpoint-N`` (model and optimizer
  written, RNG state and trainer state not yet);
- ``--die_during_final_save``: SIGKILL itself while the final model's files are moved into ``output_dir``, once
  ``model.safetensors`` is in place (``config.json`` is not yet).

The exit status is the CLI's (0, or 2 with one ``error:`` line); killed runs end by the signal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_events(path: Path) -> list[dict[str, Any]]:
    """The records appended to ``path`` (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@contextmanager
def record_batches(path: Path) -> Iterator[None]:
    """While active, every ``AlignmentTrainer.training_step`` appends the step and a fingerprint of its batch."""
    from amber_align.trainers.alignment_trainer import AlignmentTrainer

    original = AlignmentTrainer.training_step

    def training_step(self, model, inputs, num_items_in_batch=None):
        ids = inputs["input_ids"].detach().cpu().contiguous()
        digest = hashlib.sha1(ids.numpy().tobytes() + str(tuple(ids.shape)).encode()).hexdigest()[:16]
        _append(path, {"step": self.state.global_step, "batch": digest})
        return original(self, model, inputs, num_items_in_batch)

    AlignmentTrainer.training_step = training_step
    try:
        yield
    finally:
        AlignmentTrainer.training_step = original


def _install_hooks(args: argparse.Namespace, events: Path) -> None:
    import transformers

    from amber_align.trainers.alignment_trainer import AlignmentTrainer
    from amber_align.trainers.common import AtomicCheckpoints

    if args.pause_after_checkpoint is not None:
        def save_then_pause(self, model, trial):
            AtomicCheckpoints._save_checkpoint(self, model, trial)
            if self.state.global_step == args.pause_after_checkpoint:
                _append(events, {"saved": self.state.global_step})
                go = Path(f"{events}.go")
                deadline = time.time() + 120
                while time.time() < deadline and not go.exists():
                    time.sleep(0.05)
                if not go.exists():
                    os._exit(3)  # nobody came: never hang a test run

        AlignmentTrainer._save_checkpoint = save_then_pause

    if args.die_during_checkpoint is not None:
        original_rng = transformers.Trainer._save_rng_state

        def save_rng_or_die(self, output_dir):
            if self.state.global_step == args.die_during_checkpoint:
                os.kill(os.getpid(), signal.SIGKILL)
            return original_rng(self, output_dir)

        transformers.Trainer._save_rng_state = save_rng_or_die

    if args.die_during_final_save:
        import amber_align.io_utils as io_utils

        real_replace = os.replace
        moved: list[str] = []

        def replace_or_die(src, dst, *a, **k):
            if Path(src).parent.name == ".incomplete-model" != Path(dst).parent.name:  # into output_dir
                if "model.safetensors" in moved:  # the weights are in place, config.json is not
                    os.kill(os.getpid(), signal.SIGKILL)
                moved.append(Path(src).name)
            return real_replace(src, dst, *a, **k)

        io_utils.os.replace = replace_or_die  # the os module itself: io_utils calls os.replace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("--pause_after_checkpoint", type=int, default=None)
    parser.add_argument("--die_during_checkpoint", type=int, default=None)
    parser.add_argument("--die_during_final_save", action="store_true")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    align_args = argv[split + 1:]

    from amber_align.cli import main as cli_main

    _install_hooks(args, args.events)
    with record_batches(args.events):
        return cli_main(align_args)


if __name__ == "__main__":
    sys.exit(main())

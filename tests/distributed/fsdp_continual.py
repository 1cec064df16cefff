"""Continual learning (NLI head + Cao parts on drawn pairs, the frozen anchor f0) for 2 steps of ``run_finetune``
under FSDP2: tests/test_fsdp.py launches it with recipes/accelerate/fsdp.yaml on 2 CPU processes, FSDP forced by the
test-only ``fsdp_cpu_shim``; the run itself is ``deepspeed_continual.main`` (the same config, the same record in
``WORK/continual.json``).

Run: accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \\
         tests/distributed/fsdp_continual.py WORK     (WORK/tiny: a tiny model folder)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fsdp_cpu_shim  # noqa: E402,F401  (before any Accelerator exists)
from deepspeed_continual import main  # noqa: E402

if __name__ == "__main__":
    main()

"""CI run of ``benchmarks/gpu_suite.sh --smoke`` as the GPU machine will see it: inputs prepared beforehand
(``--prepare --smoke``), then the suite in a subprocess where ``datasets``, ``seqeval`` and every other installed
package outside what the GPU machine has (torch, transformers, accelerate, peft, safetensors and their
dependencies) cannot be imported: the proof that the device run will not stop on a missing module. Every table's
rows must be written, and bad arguments exit 2 with one line.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = ["bash", str(REPO / "benchmarks" / "gpu_suite.sh")]
#: what the GPU machine has installed (besides Python's standard library)
GPU_MACHINE = ("torch", "transformers", "accelerate", "peft", "safetensors")

#: a sitecustomize that hides top-level modules of site-packages outside $GPU_SUITE_ALLOWED, and always datasets and
#: seqeval, as if they were not installed (find_spec -> None, no distribution metadata), not as import errors
BLOCKER = '''
import importlib.machinery, os

_ALLOWED = set(os.environ["GPU_SUITE_ALLOWED"].split(","))
_BLOCKED = {"datasets", "seqeval"}
_PF = importlib.machinery.PathFinder
_find_spec, _find_distributions = _PF.find_spec, _PF.find_distributions


def _hidden(name, origin):
    top = name.split(".")[0]
    if top in _BLOCKED:
        return True
    return origin is not None and "site-packages" in origin and top not in _ALLOWED and not top.startswith("_")


def find_spec(name, path=None, target=None):
    spec = _find_spec(name, path, target)
    if spec is not None and _hidden(name, spec.origin or str((spec.submodule_search_locations or [None])[0])):
        return None
    return spec


def find_distributions(*args, **kwargs):
    return (d for d in _find_distributions(*args, **kwargs)
            if (d.metadata["Name"] or "").replace("-", "_").lower() not in _BLOCKED)


_PF.find_spec = staticmethod(find_spec)
_PF.find_distributions = staticmethod(find_distributions)
'''


def _requirement_name(requirement: str) -> str | None:
    if "extra ==" in requirement:
        return None
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]


def allowed_modules() -> set[str]:
    """Top-level import names of the GPU machine's packages and of everything they require (installed here)."""
    seen: set[str] = set()
    todo = list(GPU_MACHINE)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(n for n in map(_requirement_name, requires) if n)
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if any(d.lower().replace("_", "-") in seen for d in dists)} - {"datasets", "seqeval"}


@pytest.fixture(scope="module")
def smoke_inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu_inputs")
    result = subprocess.run(SUITE + ["--prepare", "--smoke", "--inputs", str(folder)], capture_output=True, text=True,
                            timeout=240, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "manifest.json").is_file() and (folder / "xlmr" / "pairs.json.gz").is_file()
    return folder


def blocked_env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    return dict(os.environ, PYTHONPATH=str(shim), GPU_SUITE_ALLOWED=",".join(sorted(allowed_modules())),
                PYTHON=sys.executable)


def test_the_blocker_hides_datasets_and_seqeval_like_a_missing_package(tmp_path):
    env = blocked_env(tmp_path)
    probe = ("import importlib.util, importlib.metadata as m\n"
             "from transformers.utils import is_datasets_available\n"
             "print(importlib.util.find_spec('datasets'), importlib.util.find_spec('seqeval'), "
             "is_datasets_available(), 'datasets' in {d.metadata['Name'] for d in m.distributions()})\n"
             "import torch, transformers, accelerate\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["None", "None", "False", "False"]


def test_smoke_run_writes_every_table_without_datasets(tmp_path, smoke_inputs):
    results, out = tmp_path / "results.md", tmp_path / "out"
    out.mkdir()
    env = dict(blocked_env(tmp_path), OUT=str(out))
    result = subprocess.run(SUITE + ["--smoke", "--inputs", str(smoke_inputs), "--results", str(results)],
                            capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert (out / "gpu_suite.md").read_text(encoding="utf-8").strip() == text.strip(), "the $OUT copy is the same"
    assert len((out / "gpu_suite.jsonl").read_text(encoding="utf-8").splitlines()) == 13, "one raw line per row"
    assert text.startswith("### GPU suite (smoke) — CPU")
    tables = re.split(r"^#### ", text, flags=re.M)[1:]
    titles = [t.splitlines()[0] for t in tables]
    assert titles == ["Training throughput — mbert-base (smoke: tiny), batch 4 pairs",
                      "Extraction throughput — tiny, layer 2, argmax",
                      "Training throughput — xlmr-base (smoke: tiny-xlmr), batch 4 pairs",
                      "Training throughput — xlmr-large (smoke: tiny-xlmr), batch 4 pairs"]
    rows = [[tuple(c.strip() for c in line.split("|")[1:3]) for line in t.splitlines()
             if line.startswith("| ") and not line.startswith("| method") and not line.startswith("| run")]
            for t in tables]
    parts = [(m, "fast") for m in ("amber-mlm", "amber-tlm", "amber-sa", "amber-wa")]
    assert rows[0] == [("cao", "reference"), ("cao", "fast"), ("amber-all", "reference"), ("amber-all", "fast")] + parts
    assert [r[0] for r in rows[1]] == ["one-pair loop (SimAlign-style)", "WordAligner batch 8"]
    assert rows[2] == [("cao", "reference"), ("amber-all", "fast")] and rows[3] == [("cao", "fast")]
    assert "Links identical to the loop's on 100.0 % of 8 pairs." in text
    verdicts = [line for line in text.splitlines() if re.match(r"- (PASS|FAIL|not measured): ", line)]
    assert len(verdicts) == 4 and not any(v.startswith("- not measured") for v in verdicts)


@pytest.mark.parametrize("args, message", [
    (["--smoke", "--inputs", "/nonexistent/gpu_inputs"],
     "--inputs: /nonexistent/gpu_inputs is not a prepared inputs folder (no manifest.json); prepare it first: "
     "bash benchmarks/gpu_suite.sh --prepare --smoke --inputs /nonexistent/gpu_inputs"),
    (["--smoke", "--bogus"], "unrecognized arguments: --bogus"),
    (["--merge", "/nonexistent/gpu_suite.md"],
     "--merge: /nonexistent/gpu_suite.md is not a non-empty file (the gpu_suite.md a device run left in $OUT)"),
])
def test_bad_arguments_exit_2_with_one_line(args, message):
    result = subprocess.run(SUITE + args, capture_output=True, text=True, timeout=60, cwd=REPO,
                            env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 2
    assert message in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("gpu_suite.sh: error:")] == \
        [f"gpu_suite.sh: error: {result.stderr.split('error: ', 1)[1].strip()}"]


def test_a_smoke_folder_or_a_cpu_is_refused_for_the_full_run(smoke_inputs):
    result = subprocess.run(SUITE + ["--inputs", str(smoke_inputs)], capture_output=True, text=True, timeout=120,
                            cwd=REPO, env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 2
    expected = "no CUDA device: the full suite measures a GPU; on a CPU run --smoke"
    import torch

    if torch.cuda.is_available():
        expected = "was prepared with --smoke (24 pairs); prepare the full folder"
    assert expected in result.stderr

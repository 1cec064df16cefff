"""Push a finished run folder to the Hub (``amber-align push DIR --repo-id ID``).

The folder must hold a model (``config.json`` and safetensors weights). Its card is rendered again first (so
results added by ``amber-align evaluate`` since training reach ``model-index``), then ``huggingface_hub.HfApi``
creates the repo (``exist_ok``) and uploads the folder in one commit, leaving out what the Trainer's own push leaves
out (``_*``, ``checkpoint-*``) and ``training_args.bin`` (a pickle) as well.

The token is never an argument: ``huggingface_hub`` reads it from ``HF_TOKEN`` (or the login cache), and neither
the log nor an error message names it. The endpoint is ``HF_ENDPOINT`` (default https://huggingface.co).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger

__all__ = ["PUSH_IGNORE_PATTERNS", "PushResult", "check_model_folder", "push_folder"]

logger = get_logger(__name__)

PUSH_IGNORE_PATTERNS = ["_*", "checkpoint-*", "checkpoint-*/**", "training_args.bin", ".*", "*.tmp"]


@dataclass(frozen=True)
class PushResult:
    """Where the folder went: the repo id, its URL and the commit."""

    repo_id: str
    url: str
    commit_url: str
    files: list[str]


def check_model_folder(folder: str | Path) -> Path:
    """``folder`` as a Path if it holds a model to push (``config.json`` + ``*.safetensors``), else a
    ``DataFormatError`` / ``ConfigError`` naming the folder and what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"push: {folder} is not a directory (expected the output folder of a run)")
    if not (folder / "config.json").is_file():
        raise DataFormatError("not a model folder: config.json is missing (push the output folder of a run, "
                              "where the model was saved)", path=folder)
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.safetensors.index.json")):
        raise DataFormatError("no safetensors weights (model.safetensors) to push", path=folder)
    return folder


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP client this huggingface_hub uses (httpx2, httpx or requests)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            base = getattr(importlib.import_module(name), "HTTPError", None)
        except ImportError:
            continue
        if isinstance(base, type) and issubclass(base, BaseException):
            errors.append(base)
    return tuple(errors)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"--repo-id {repo_id!r} is not a Hub repo id such as 'user/model-name': {exc}") from None


def push_folder(folder: str | Path, repo_id: str, *, private: bool | None = None, revision: str | None = None,
                commit_message: str | None = None, license: str | None = None,  # noqa: A002
                base_model: str | None = None, update_card: bool = True, api: Any = None) -> PushResult:
    """Refresh the card of ``folder`` and upload the folder to ``repo_id`` (created when missing).

    ``license`` / ``base_model`` set those card fields (they win over the README's). Hub failures (no token, no
    permission, no network) become a ``ConfigError`` naming the repo and the HTTP status, never the token.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = check_model_folder(folder)
    _check_repo_id(repo_id)
    if update_card:
        from amber_align.hub.card import refresh_card

        refresh_card(folder, hub_model_id=repo_id, extra_metadata={"license": license, "base_model": base_model})
    api = api or HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                 commit_message=commit_message or f"Upload {folder.name} with amber-align push",
                                 ignore_patterns=PUSH_IGNORE_PATTERNS)
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = " (set HF_TOKEN to a token with write access)" if status in (401, 403) else ""
        raise ConfigError(f"push to {api.endpoint} repo {repo_id!r} failed: HTTP {status}{hint}: "
                          f"{str(exc).splitlines()[0]}") from None
    except _transport_errors() as exc:  # connection refused, DNS, offline mode, ...
        raise ConfigError(f"push to {api.endpoint} repo {repo_id!r} failed: {type(exc).__name__}: {exc}") from None
    from huggingface_hub.utils import filter_repo_objects

    files = sorted(filter_repo_objects((p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
                                       ignore_patterns=PUSH_IGNORE_PATTERNS))
    logger.info(f"pushed {folder} to {url} ({info.commit_url})")
    return PushResult(repo_id=repo_id, url=str(url), commit_url=info.commit_url, files=files)

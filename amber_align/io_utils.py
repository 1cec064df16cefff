"""File I/O shared by the package: atomic writes (a reader never sees a half-written file, an interrupted write
leaves none behind), atomic publication of whole folders (a checkpoint or a saved model appears complete or not at
all), and one strict text-line reader whose errors name the file and line."""

from __future__ import annotations

import codecs
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from amber_align.errors import ConfigError, DataFormatError

__all__ = ["atomic_write_text", "atomic_write_bytes", "read_text_lines", "iter_text_lines", "replace_directory",
           "move_files_into", "WEIGHT_PATTERNS", "check_text_line", "check_not_utf16",
           "usual_modes"]

#: file names of model weights (safetensors, pickle, sharded indexes), as transformers writes them
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` via a temp file + fsync + ``os.replace``.

    The file gets the usual mode for new files (0666 minus the umask), not ``mkstemp``'s private 0600, so shipped
    or shared outputs stay readable.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + ``os.replace`` (PNGs, safetensors, and the text of
    :func:`atomic_write_text`), with the usual mode for new files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def usual_modes(folder: str | os.PathLike) -> None:
    """Give every file under ``folder`` the usual mode for new files (0666 minus the umask): transformers 5 writes
    weights with ``mkstemp``'s private 0600, so a saved model or checkpoint could not be read by the group that
    shares it. Called on a staged folder before it is published."""
    mode = 0o666 & ~_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)


def replace_directory(staged: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete folder ``staged`` at ``target`` with one rename (both on the same filesystem).

    An existing ``target`` is first renamed aside (a hidden ``.NAME.old-*`` sibling) and deleted afterwards, so at
    every moment ``target`` is either absent, the old folder or the new one, never a mixture. Used for Trainer
    checkpoints: ``checkpoint-N`` appears only once every file of it is written.
    """
    staged, target = Path(staged), Path(target)
    usual_modes(staged)
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, aside)
    os.replace(staged, target)
    _fsync_directory(target.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def move_files_into(staged: str | os.PathLike, target: str | os.PathLike, *, last: str = "config.json") -> None:
    """Move the files of the complete folder ``staged`` into ``target`` (which may hold other things), ``last``
    at the very end, then remove ``staged``.

    Why this order: ``AutoModel.from_pretrained`` needs ``config.json``. It is deleted from ``target`` first and
    put back last, so while the move is under way (or after it was killed) ``target`` does not load as a model:
    a folder with a ``config.json`` holds the complete new save. Weight files of an earlier save that the new one
    does not have (e.g. old shards) are deleted too, so stale weights cannot mix with new ones.
    """
    staged, target = Path(staged), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    usual_modes(staged)
    names = {p.name for p in staged.iterdir()}
    (target / last).unlink(missing_ok=True)
    for pattern in WEIGHT_PATTERNS:
        for old in target.glob(pattern):
            if old.name not in names and old.is_file():
                old.unlink()
    for name in sorted(names - {last}):
        destination = target / name
        if (staged / name).is_dir() and destination.is_dir():
            replace_directory(staged / name, destination)
        else:
            os.replace(staged / name, destination)
    if last in names:
        _fsync_directory(target)
        os.replace(staged / last, target / last)
    _fsync_directory(target)
    shutil.rmtree(staged, ignore_errors=True)


def read_text_lines(path: str | os.PathLike, *, what: str = "file", encoding: str | None = None,
                    fallback: str | None = None) -> tuple[list[str], str]:
    """Lines of a text file and the encoding used: split on ``\\n`` only, BOM and the CR of CRLF stripped, no
    extra line for a final newline.

    ``encoding`` given: strict decoding with it. Else UTF-8, then ``fallback`` (e.g. Latin-1 for CoNLL-2002) when
    the file is not valid UTF-8. A file that cannot be read is a ``ConfigError`` naming ``what`` and the path; bad
    bytes are a ``DataFormatError`` naming the line.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err.strerror or err}") from None
    data = data.removeprefix(codecs.BOM_UTF8)
    if encoding is None or not encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
        check_not_utf16(data, path)
    tried = encoding or "utf-8"
    try:
        codecs.lookup(tried)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r} for {str(path)!r}") from None
    try:
        text, used = data.decode(tried), tried
    except UnicodeDecodeError as err:
        if encoding is None and fallback is not None:
            text, used = data.decode(fallback), fallback
        else:
            line = data.count(b"\n", 0, err.start) + 1
            if encoding is not None:
                raise DataFormatError(f"not valid {tried} (byte 0x{data[err.start]:02x})", path=path,
                                      line=line) from None
            column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
            raise DataFormatError(f"invalid UTF-8 (byte 0x{data[err.start]:02x} at column {column}); convert the "
                                  "file to UTF-8 (e.g. iconv -f latin1 -t utf-8)", path=path, line=line) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    for number, line in enumerate(lines, 1):
        check_text_line(line, path, number)
    return lines, used



def iter_text_lines(path: str | os.PathLike, what: str = "file") -> Iterator[str]:
    """Lines of a UTF-8 file, one at a time (for corpora read lazily): split on ``\\n`` only, BOM and the CR of
    CRLF stripped, a bad byte named with its line and column (the streaming twin of :func:`read_text_lines`).
    ``what`` names the file in the error when it cannot be opened (e.g. "src_file", "corpus file")."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; the generator may stop early
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err.strerror or err}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
                if not raw:  # a file holding only a BOM has no line
                    return
                check_not_utf16(raw, path)
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(f"invalid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                                      "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)", path=path,
                                      line=number) from None
            check_text_line(line, path, number)
            yield line


def check_not_utf16(data: bytes, path: str | os.PathLike) -> None:
    """``data``, the start of a file, has no UTF-16 (or UTF-32) byte-order mark: else say so, not "invalid UTF-8,
    try latin-1"."""
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise DataFormatError(f"a {name} file (byte-order mark {bom.hex(' ')}); convert it to UTF-8 (e.g. "
                                  f"iconv -f {name} -t UTF-8)", path=path, line=1)


def check_text_line(line: str, path: str | os.PathLike, number: int) -> None:
    """A decoded line holds no NUL (a binary or UTF-16 file; the tokenizer would take it as text) and no carriage
    return (CR-only line endings made the whole file one line)."""
    nul = line.find("\x00")
    if nul >= 0:
        raise DataFormatError(f"NUL byte at column {nul + 1}: a binary file, or UTF-16/UTF-32 text? convert it "
                              "to UTF-8 text (e.g. iconv -f UTF-16 -t UTF-8)", path=path, line=number)
    cr = line.find("\r")
    if cr >= 0:
        raise DataFormatError(f"carriage return inside the line (column {cr + 1}): CR-only (old Mac) line endings? "
                              "convert them to \\n (e.g. tr '\\r' '\\n' < IN > OUT)", path=path, line=number)

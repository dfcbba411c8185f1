"""Read input files into normalised `Document` objects, rejecting bad inputs one by one.

Supported inputs are plain text (`.txt`), Markdown (`.md`, `.markdown`), JSON Lines (`.jsonl`, one
document per line) and zip archives holding any of those. A bad file, archive member or JSON line
becomes a `RejectedInput` with a reason the user can act on, and reading continues with the rest.
"""

import io
import json
import logging
import os
import stat
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict

from graphmem_core import ids
from graphmem_core.errors import ConfigurationError, InvalidInputError
from graphmem_core.models import Document, RejectedInput
from graphmem_core.settings import validate_namespace

logger = logging.getLogger(__name__)

_FORMAT_BY_SUFFIX = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".jsonl": "jsonl",
    ".zip": "zip",
}
SUPPORTED_SUFFIXES = frozenset(_FORMAT_BY_SUFFIX)
_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_SUFFIXES))

# Key of the sub-object in `Document.metadata` that records where a document came from. User metadata
# from JSON Lines stays at the top level, so this one reserved key keeps the two from clashing.
SOURCE_METADATA_KEY = "_source"

# Text files contain almost no control characters (tab, newline and carriage return are not
# counted), while binary data that happens to be valid UTF-8 contains many.
_MAX_CONTROL_CHAR_SHARE = 0.10
# UTF-8 encodes these characters as single bytes that never occur inside a multi-byte sequence, so
# they can be counted on the raw bytes, which is much faster than on the decoded text.
_CONTROL_BYTES = bytes((*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F))

# A zip archive may expand to this many times GRAPHMEM_MAX_FILE_BYTES in total (1 GiB at the
# default 10 MiB). Each member is also capped at the per-file limit, which stops zip bombs.
_ZIP_EXPANSION_FACTOR = 100

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_MAX_FILE_BYTES_FIX = "split the input or raise the GRAPHMEM_MAX_FILE_BYTES setting"


class ReadResult(BaseModel):
    """Documents read in one call, the inputs rejected, and how many repeated texts were skipped."""

    model_config = ConfigDict(frozen=True)

    documents: list[Document]
    rejected: list[RejectedInput]
    duplicates: int = 0


class _Rejected(Exception):
    """Internal signal that one input is rejected, with the text of `RejectedInput.reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def list_input_files(path: Path) -> list[Path]:
    """List `path` itself when it is a file, else every file under it, recursively and sorted.

    Files and folders whose names start with "." are skipped below `path`. Raises
    `InvalidInputError` when `path` does not exist.
    """
    if not path.exists():
        raise InvalidInputError(f"input path not found: {path}: check the path and that it is mounted")
    if not path.is_dir():
        return [path]

    files: list[Path] = []
    for folder, subfolders, names in os.walk(path, onerror=_log_walk_error):
        # Pruning in place stops the walk from descending into hidden folders such as `.git`.
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            candidate = Path(folder, name)
            if not name.startswith(".") and candidate.is_file():
                files.append(candidate)
    return sorted(files)


def _log_walk_error(error: OSError) -> None:
    logger.warning("skipped unreadable folder %s: %s", error.filename, error.strerror or error)


def normalize_text(text: str) -> str:
    """Normalise text as stored and hashed: no BOM, `\\n` line endings, Unicode NFC, no outer whitespace."""
    text = text.removeprefix("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    return text.strip()


def read_documents(files: Sequence[Path], tenant: str, memory: str, max_file_bytes: int) -> ReadResult:
    """Read `files` into documents of the namespace `tenant`/`memory`.

    Each document's id is `ids.document_id(tenant, memory, text)` over its normalised text (see
    `normalize_text`), so a text seen twice in one call yields one document: the first source
    wins and later copies are counted in `ReadResult.duplicates`.

    `Document.source` is the path as given, plus `!member/name` for a zip member and `#L<line>` for
    a JSON Lines line. `Document.metadata[SOURCE_METADATA_KEY]` ("_source") is an object with:

    - `path`: the file path as given;
    - `format`: "text", "markdown" or "jsonl";
    - `size_bytes`: size of the file, the archive member or the JSON line;
    - `member`: the zip member name, for archive members only;
    - `line`: the 1-based line number, for JSON Lines only;
    - `external_id`: the line's `id` field as a string, when the line has one.

    The `metadata` object of a JSON line becomes the top level of `Document.metadata`. A line whose
    metadata uses the reserved key "_source" is rejected.

    Raises `ConfigurationError` for an invalid namespace or a `max_file_bytes` below 1. Every
    problem with an input is returned in `ReadResult.rejected` instead.
    """
    validate_namespace(tenant, memory)
    if max_file_bytes < 1:
        raise ConfigurationError(f"max_file_bytes={max_file_bytes} is below 1: set GRAPHMEM_MAX_FILE_BYTES to a positive byte count")

    started = time.perf_counter()
    logger.info("reading %d input files into %s/%s", len(files), tenant, memory)

    collector = _Collector(tenant=tenant, memory=memory, max_file_bytes=max_file_bytes)
    for path in files:
        _read_file(path, collector)

    logger.info(
        "read %d documents from %d files in %.2f s: %d rejected, %d duplicates skipped",
        len(collector.documents),
        len(files),
        time.perf_counter() - started,
        len(collector.rejected),
        collector.duplicates,
    )
    return ReadResult(documents=collector.documents, rejected=collector.rejected, duplicates=collector.duplicates)


class _Collector:
    """Documents, rejections and duplicate count accumulated during one `read_documents` call."""

    def __init__(self, tenant: str, memory: str, max_file_bytes: int) -> None:
        self.tenant = tenant
        self.memory = memory
        self.max_file_bytes = max_file_bytes
        self.documents: list[Document] = []
        self.rejected: list[RejectedInput] = []
        self.duplicates = 0
        self._source_by_id: dict[str, str] = {}

    def reject(self, source: str, reason: str) -> None:
        logger.warning("rejected %s: %s", source, reason)
        self.rejected.append(RejectedInput(source=source, reason=reason))

    def add(self, text: str, title: str | None, source: str, metadata: dict[str, Any]) -> None:
        document_id = ids.document_id(self.tenant, self.memory, text)
        first_source = self._source_by_id.get(document_id)
        if first_source is not None:
            logger.debug("skipped %s: same text as %s", source, first_source)
            self.duplicates += 1
            return

        self._source_by_id[document_id] = source
        document = Document(
            id=document_id,
            tenant=self.tenant,
            memory=self.memory,
            text=text,
            title=title,
            source=source,
            metadata=metadata,
        )
        self.documents.append(document)


def _read_file(path: Path, collector: _Collector) -> None:
    source = str(path)
    try:
        file_format = _format_of(path.name)
        data = _read_limited(path, collector.max_file_bytes)
        if file_format == "zip":
            _read_zip(data, source, collector)
        else:
            origin = {"path": source, "format": file_format, "size_bytes": len(data)}
            _read_content(data, file_format, source, path.stem, origin, collector)
    except _Rejected as rejection:
        collector.reject(source, rejection.reason)


def _format_of(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    file_format = _FORMAT_BY_SUFFIX.get(suffix)
    if file_format is None:
        extension = repr(suffix) if suffix else "(none)"
        raise _Rejected(f"unsupported file extension {extension}: convert the file to one of {_SUPPORTED_LIST}")
    return file_format


def _read_limited(path: Path, max_file_bytes: int) -> bytes:
    """Read a regular file of at most `max_file_bytes`, rejecting larger or unreadable ones."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise _Rejected("not a regular file: pass text files or folders that contain them")
        if status.st_size > max_file_bytes:
            raise _Rejected(_too_large_reason("file", status.st_size, max_file_bytes))

        # Reading one byte past the limit catches a file that grew after `stat`.
        with path.open("rb") as handle:
            data = handle.read(max_file_bytes + 1)
    except OSError as error:
        raise _Rejected(f"cannot read file: {error.strerror or error}: check that it exists and is readable") from None

    if len(data) > max_file_bytes:
        raise _Rejected(_too_large_reason("file", len(data), max_file_bytes, at_least=True))
    return data


def _too_large_reason(what: str, size: int, limit: int, at_least: bool = False) -> str:
    size_text = f"more than {limit:,}" if at_least else f"{size:,}"
    return f"{what} is {size_text} bytes, over the limit of {limit:,} bytes: {_MAX_FILE_BYTES_FIX}"


def _read_content(
    data: bytes,
    file_format: str,
    source: str,
    stem: str,
    origin: dict[str, Any],
    collector: _Collector,
) -> None:
    """Read the bytes of one text, Markdown or JSON Lines input, with `origin` as its `_source` metadata."""
    if file_format == "jsonl":
        _read_json_lines(data, source, origin, collector)
        return

    text = normalize_text(_decode_text(data))
    if not text:
        raise _Rejected("file is empty or contains only whitespace: add text or remove the file")

    title = _markdown_title(text) if file_format == "markdown" else None
    collector.add(text, title or stem, source, {SOURCE_METADATA_KEY: origin})


def _reject_binary(data: bytes) -> None:
    """Reject UTF-16 text and data containing NUL bytes, which UTF-8 text never contains."""
    if data.startswith(_UTF16_BOMS):
        raise _Rejected("UTF-16 text (byte order mark at byte 0): save the file as UTF-8")

    nul_offset = data.find(b"\x00")
    if nul_offset >= 0:
        raise _Rejected(f"binary content (NUL byte at byte {nul_offset}): only UTF-8 text is read, so convert the file to text first")


def _decode_text(data: bytes) -> str:
    """Decode UTF-8 text, rejecting binary data and other encodings with the offending byte offset."""
    _reject_binary(data)

    bom_length = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        text = data[bom_length:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Rejected(f"invalid UTF-8 at byte {bom_length + error.start}: save the file as UTF-8") from None

    control_count = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if text and control_count / len(text) > _MAX_CONTROL_CHAR_SHARE:
        share = control_count / len(text)
        raise _Rejected(f"binary content ({share:.0%} of characters are control characters): only text files are read")
    return text


def _markdown_title(text: str) -> str | None:
    """Return the text of the first ATX heading (`# Title`) outside fenced code blocks, if any."""
    in_fence = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence or not stripped.startswith("#"):
            continue

        marks = len(stripped) - len(stripped.lstrip("#"))
        rest = stripped[marks:]
        # A heading has 1 to 6 marks followed by a space; "#hashtag" is not a heading.
        if marks <= 6 and (not rest or rest[0] in " \t"):
            title = rest.strip().rstrip("#").strip()
            if title:
                return title
    return None


def _read_json_lines(data: bytes, source: str, origin: dict[str, Any], collector: _Collector) -> None:
    """Read one document per non-blank line, rejecting each bad line on its own."""
    _reject_binary(data)

    offset = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    body = data[offset:]
    line_count = 0
    for line_number, raw_line in enumerate(body.split(b"\n"), start=1):
        line_offset = offset
        offset += len(raw_line) + 1
        if not raw_line.strip():
            continue

        line_count += 1
        line_source = f"{source}#L{line_number}"
        try:
            _read_json_line(raw_line, line_offset, line_number, line_source, origin, collector)
        except _Rejected as rejection:
            collector.reject(line_source, rejection.reason)

    if line_count == 0:
        raise _Rejected("file is empty or contains only blank lines: write one JSON object per line")


def _read_json_line(
    raw_line: bytes,
    line_offset: int,
    line_number: int,
    source: str,
    origin: dict[str, Any],
    collector: _Collector,
) -> None:
    try:
        line = raw_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Rejected(f"invalid UTF-8 at byte {line_offset + error.start}: save the file as UTF-8") from None

    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise _Rejected(f"malformed JSON ({error.msg}: column {error.colno}): write one JSON object per line") from None
    if not isinstance(record, dict):
        raise _Rejected(f'line is a JSON {_json_type(record)}: write an object with a string "text" field')

    text = _json_field(record, "text", str, "a string", required=True)
    title = _json_field(record, "title", str, "a string or null")
    user_metadata = _json_field(record, "metadata", dict, "an object or null") or {}
    external_id = _json_field(record, "id", (str, int), "a string or an integer")

    text = normalize_text(text)
    if not text:
        raise _Rejected('field "text" is empty or only whitespace: put the document text in "text"')
    if SOURCE_METADATA_KEY in user_metadata:
        raise _Rejected(f'metadata key "{SOURCE_METADATA_KEY}" is reserved for graphmem: rename that key')

    line_origin = {**origin, "size_bytes": len(raw_line), "line": line_number}
    if external_id is not None:
        line_origin["external_id"] = str(external_id)
    title = normalize_text(title) if title is not None else None
    collector.add(text, title or None, source, {**user_metadata, SOURCE_METADATA_KEY: line_origin})


def _json_field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], expected: str, required: bool = False) -> Any:
    """Return `record[name]` when it has type `kind`, None when it is absent or null and optional."""
    value = record.get(name)
    if value is None:
        if required:
            raise _Rejected(f'missing field "{name}": each line needs a string "{name}" field')
        return None

    # `bool` is a subclass of `int` in Python, but JSON true/false is not an id.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Rejected(f'field "{name}" is a JSON {_json_type(value)}: make it {expected}')
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _read_zip(data: bytes, source: str, collector: _Collector) -> None:
    """Read every supported member of a zip archive held in memory; nothing is extracted to disk."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise _Rejected(f"invalid zip archive ({error}): re-create the archive") from None

    total_limit = collector.max_file_bytes * _ZIP_EXPANSION_FACTOR
    total_read = 0
    with archive:
        members = sorted((info for info in archive.infolist() if not info.is_dir()), key=lambda info: info.filename)
        for info in members:
            member_path = PurePosixPath(info.filename.replace("\\", "/"))
            if _is_hidden(member_path.parts):
                continue

            member_source = f"{source}!{info.filename}"
            try:
                _check_member_path(info.filename, member_path)
                member_format = _format_of(member_path.name)
                if total_read + info.file_size > total_limit:
                    raise _Rejected(
                        f"archive expands to more than {total_limit:,} bytes in total "
                        f"({_ZIP_EXPANSION_FACTOR} times the file limit): split the archive or raise GRAPHMEM_MAX_FILE_BYTES"
                    )
                member_data = _read_member(archive, info, collector.max_file_bytes)
                total_read += len(member_data)

                origin = {"path": source, "format": member_format, "size_bytes": len(member_data), "member": info.filename}
                _read_content(member_data, member_format, member_source, member_path.stem, origin, collector)
            except _Rejected as rejection:
                collector.reject(member_source, rejection.reason)


def _check_member_path(name: str, member_path: PurePosixPath) -> None:
    """Reject member names that could escape a folder if extracted, and nested archives."""
    if member_path.is_absolute() or ".." in member_path.parts:
        raise _Rejected(f"unsafe member path {name!r} (absolute or containing '..'): re-create the archive with relative paths")
    if member_path.suffix.lower() == ".zip":
        raise _Rejected("nested zip archive: extract it and pass its files instead")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_file_bytes: int) -> bytes:
    """Read one archive member, rejecting members over the size limit and unreadable ones."""
    if info.file_size > max_file_bytes:
        raise _Rejected(_too_large_reason("archive member", info.file_size, max_file_bytes))

    # The header's size can be forged, so the read itself stops one byte past the limit.
    try:
        with archive.open(info) as handle:
            data = handle.read(max_file_bytes + 1)
    except RuntimeError as error:
        raise _Rejected(f"cannot read archive member ({error}): re-create the archive without a password") from None
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError) as error:
        raise _Rejected(f"cannot read archive member ({error}): re-create the archive with deflate or no compression") from None

    if len(data) > max_file_bytes:
        raise _Rejected(_too_large_reason("archive member", len(data), max_file_bytes, at_least=True))
    return data


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in parts)

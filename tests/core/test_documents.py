"""Tests for reading input files into documents, on real podcast transcripts mixed with bad inputs."""

import io
import json
import os
import time
import unicodedata
import zipfile
from pathlib import Path

import pytest

from graphmem_core import ids
from graphmem_core.documents import (
    SOURCE_METADATA_KEY,
    SUPPORTED_SUFFIXES,
    ReadResult,
    list_input_files,
    normalize_text,
    read_documents,
)
from graphmem_core.errors import ConfigurationError, InvalidInputError

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
PODCAST_ZIP = CORPORA / "podcasts" / "transcripts.zip"
PODCAST_COUNT = 1669

# Every podcast transcript is about 3 KB, so this limit accepts them and rejects the oversized inputs below.
SMALL_LIMIT = 10_000
DEFAULT_LIMIT = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def podcast_members() -> list[str]:
    """Names of the transcript files inside the podcast archive, sorted."""
    if not PODCAST_ZIP.is_file():
        pytest.skip(f"podcast corpus not found at {PODCAST_ZIP}: check out the shared corpora next to the project")
    with zipfile.ZipFile(PODCAST_ZIP) as archive:
        return sorted(name for name in archive.namelist() if name.endswith(".txt"))


def extract_transcripts(members: list[str], folder: Path) -> list[Path]:
    """Write the named transcripts into `folder` under their base names and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with zipfile.ZipFile(PODCAST_ZIP) as archive:
        for name in members:
            path = folder / Path(name).name
            path.write_bytes(archive.read(name))
            paths.append(path)
    return paths


def read_one(path: Path, limit: int = DEFAULT_LIMIT) -> ReadResult:
    return read_documents([path], tenant="default", memory="default", max_file_bytes=limit)


def reasons_by_source(result: ReadResult) -> dict[str, str]:
    return {rejected.source: rejected.reason for rejected in result.rejected}


def build_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def mixed_folder(tmp_path: Path, podcast_members: list[str]) -> Path:
    """A folder of five real transcripts next to one input of every bad kind."""
    folder = tmp_path / "inbox"
    extract_transcripts(podcast_members[:5], folder / "transcripts")

    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_bytes(b"  \n\t\r\n  ")
    (folder / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00binary")
    (folder / "control.txt").write_bytes(b"\x01\x02\x03\x04ab" * 50)
    (folder / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (folder / "utf16.txt").write_bytes("hello".encode("utf-16"))
    (folder / "big.txt").write_bytes(b"word " * 4_000)
    (folder / "slides.pdf").write_bytes(b"%PDF-1.4 not text we read")
    (folder / "README").write_bytes(b"no extension")

    records = [
        json.dumps({"text": "First record.", "id": "rec-1", "title": "One", "metadata": {"lang": "en"}}),
        '{"text": "unterminated',
        "",
        json.dumps({"title": "no text here"}),
        json.dumps({"text": 42}),
        json.dumps({"text": "Titled wrongly.", "title": 5}),
        json.dumps({"text": "Metadata wrongly.", "metadata": [1, 2]}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"text": "Second record.", "id": 7}),
        json.dumps({"text": "Reserved key.", "metadata": {SOURCE_METADATA_KEY: "mine"}}),
        json.dumps({"text": "   "}),
        json.dumps({"text": "Identifier wrongly.", "id": True}),
    ]
    (folder / "records.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")

    with zipfile.ZipFile(PODCAST_ZIP) as corpus:
        member_text = corpus.read(podcast_members[5])
    archive = build_zip(
        {
            "docs/transcript.txt": member_text,
            "docs/notes.md": b"# Archive notes\n\nSome notes inside the archive.",
            "docs/records.jsonl": b'{"text": "Archived record."}\n',
            "docs/image.png": b"\x89PNG\r\n\x1a\n",
            "docs/binary.txt": b"\x00\x01\x02",
            "docs/big.txt": b"word " * 4_000,
            "docs/inner.zip": build_zip({"a.txt": b"nested"}),
            "../escape.txt": b"outside the folder",
            "docs/.hidden.txt": b"hidden member",
        }
    )
    (folder / "archive.zip").write_bytes(archive)

    (folder / ".hidden.txt").write_bytes(b"hidden file")
    (folder / ".git").mkdir()
    (folder / ".git" / "config.txt").write_bytes(b"hidden folder")
    return folder


def test_list_input_files_sorted_without_hidden(mixed_folder: Path) -> None:
    files = list_input_files(mixed_folder)

    assert files == sorted(files)
    assert all(not part.startswith(".") for path in files for part in path.relative_to(mixed_folder).parts)
    assert mixed_folder / "transcripts" in {path.parent for path in files}
    assert len(files) == 5 + 11


def test_list_input_files_single_file(tmp_path: Path) -> None:
    path = tmp_path / ".notes.txt"
    path.write_text("A hidden file passed by name is still read.")

    assert list_input_files(path) == [path]


def test_list_input_files_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(InvalidInputError, match="nowhere"):
        list_input_files(missing)


def test_mixed_folder_reads_good_inputs(mixed_folder: Path) -> None:
    result = read_documents(list_input_files(mixed_folder), tenant="acme", memory="notes", max_file_bytes=SMALL_LIMIT)
    sources = {document.source for document in result.documents}

    for path in sorted((mixed_folder / "transcripts").iterdir()):
        assert str(path) in sources
        document = next(document for document in result.documents if document.source == str(path))
        assert document.text == normalize_text(path.read_bytes().decode("utf-8"))
        assert document.title == path.stem
        assert document.id == ids.document_id("acme", "notes", document.text)

    archive = mixed_folder / "archive.zip"
    assert f"{archive}!docs/transcript.txt" in sources
    assert f"{archive}!docs/notes.md" in sources
    assert f"{archive}!docs/records.jsonl#L1" in sources
    assert f"{mixed_folder / 'records.jsonl'}#L1" in sources
    assert f"{mixed_folder / 'records.jsonl'}#L9" in sources
    assert len(result.documents) == 5 + 3 + 2
    assert result.duplicates == 0


def test_mixed_folder_rejection_reasons(mixed_folder: Path) -> None:
    result = read_documents(list_input_files(mixed_folder), tenant="acme", memory="notes", max_file_bytes=SMALL_LIMIT)
    reasons = reasons_by_source(result)
    records = f"{mixed_folder / 'records.jsonl'}"
    archive = f"{mixed_folder / 'archive.zip'}"

    expected = {
        str(mixed_folder / "empty.txt"): "file is empty",
        str(mixed_folder / "blank.md"): "only whitespace",
        str(mixed_folder / "binary.txt"): "NUL byte at byte 4",
        str(mixed_folder / "control.txt"): "67% of characters are control characters",
        str(mixed_folder / "latin1.txt"): "invalid UTF-8 at byte 3: save the file as UTF-8",
        str(mixed_folder / "utf16.txt"): "UTF-16",
        str(mixed_folder / "big.txt"): "file is 20,000 bytes, over the limit of 10,000 bytes",
        str(mixed_folder / "slides.pdf"): "unsupported file extension '.pdf'",
        str(mixed_folder / "README"): "unsupported file extension (none)",
        f"{records}#L2": "malformed JSON (Unterminated string starting at: column 10)",
        f"{records}#L4": 'missing field "text"',
        f"{records}#L5": 'field "text" is a JSON number: make it a string',
        f"{records}#L6": 'field "title" is a JSON number',
        f"{records}#L7": 'field "metadata" is a JSON array',
        f"{records}#L8": "line is a JSON array",
        f"{records}#L10": 'metadata key "_source" is reserved',
        f"{records}#L11": 'field "text" is empty',
        f"{records}#L12": 'field "id" is a JSON boolean',
        f"{archive}!docs/image.png": "unsupported file extension '.png'",
        f"{archive}!docs/binary.txt": "NUL byte at byte 0",
        f"{archive}!docs/big.txt": "archive member is 20,000 bytes, over the limit of 10,000 bytes",
        f"{archive}!docs/inner.zip": "nested zip archive",
        f"{archive}!../escape.txt": "unsafe member path",
    }
    for source, fragment in expected.items():
        assert source in reasons, f"no rejection for {source}"
        assert fragment in reasons[source], f"{source}: {reasons[source]}"
    assert len(reasons) == len(expected)


def test_rejection_reasons_name_the_fix(mixed_folder: Path) -> None:
    result = read_documents(list_input_files(mixed_folder), tenant="acme", memory="notes", max_file_bytes=SMALL_LIMIT)
    reasons = reasons_by_source(result)

    assert "GRAPHMEM_MAX_FILE_BYTES" in reasons[str(mixed_folder / "big.txt")]
    for suffix in SUPPORTED_SUFFIXES:
        assert suffix in reasons[str(mixed_folder / "slides.pdf")]
    for source, reason in reasons.items():
        assert ": " in reason, f"{source}: {reason}"


def test_jsonl_fields_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    line = {"text": " Café\r\nmenu ", "id": "rec-1", "title": "Menu", "metadata": {"lang": "fr", "tags": ["food"]}}
    path.write_text("\n" + json.dumps(line) + "\n", encoding="utf-8")

    result = read_one(path)
    document = result.documents[0]

    assert document.source == f"{path}#L2"
    assert document.text == "Café\nmenu"
    assert document.id == ids.document_id("default", "default", "Café\nmenu")
    assert document.title == "Menu"
    assert document.metadata["lang"] == "fr"
    assert document.metadata["tags"] == ["food"]
    origin = document.metadata[SOURCE_METADATA_KEY]
    assert origin["external_id"] == "rec-1"
    assert origin["path"] == str(path)
    assert origin["format"] == "jsonl"
    assert origin["line"] == 2
    assert origin["size_bytes"] == len(json.dumps(line).encode("utf-8"))


def test_jsonl_integer_id_kept_as_string(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"text": "Numbered record.", "id": 7}) + "\n", encoding="utf-8")

    document = read_one(path).documents[0]

    assert document.metadata[SOURCE_METADATA_KEY]["external_id"] == "7"
    assert document.title is None


def test_jsonl_invalid_utf8_line_offset(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    good = json.dumps({"text": "Fine."}).encode("utf-8") + b"\n"
    path.write_bytes(good + b'{"text": "caf\xe9"}\n')

    result = read_one(path)

    assert len(result.documents) == 1
    assert result.rejected[0].source == f"{path}#L2"
    assert result.rejected[0].reason.startswith(f"invalid UTF-8 at byte {len(good) + 13}")


def test_markdown_title_from_first_heading(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("Intro line.\n\n```bash\n# not a heading\n```\n\n## Getting started ##\n\n# Later heading\n", encoding="utf-8")
    plain = tmp_path / "plain.markdown"
    plain.write_text("No heading, only #hashtags here.", encoding="utf-8")

    result = read_documents([path, plain], tenant="default", memory="default", max_file_bytes=DEFAULT_LIMIT)

    assert result.documents[0].title == "Getting started"
    assert result.documents[1].title == "plain"
    assert result.documents[0].metadata[SOURCE_METADATA_KEY]["format"] == "markdown"


def test_suffix_matched_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "NOTES.TXT"
    path.write_text("Upper-case extension.", encoding="utf-8")

    result = read_one(path)

    assert result.rejected == []
    assert result.documents[0].title == "NOTES"


def test_nfc_normalisation_and_id(tmp_path: Path) -> None:
    decomposed = "Cafe\u0301 culture"
    composed = unicodedata.normalize("NFC", decomposed)
    path = tmp_path / "cafe.txt"
    path.write_text(decomposed, encoding="utf-8")

    document = read_one(path).documents[0]

    assert composed == "Caf\u00e9 culture"
    assert document.text == composed
    assert document.id == ids.document_id("default", "default", composed)


def test_bom_and_line_endings_normalised(tmp_path: Path) -> None:
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbf  first line\r\nsecond line\rthird line\r\n\r\n")

    document = read_one(path).documents[0]

    assert document.text == "first line\nsecond line\nthird line"


def test_invalid_utf8_offset_counts_bom(tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    path.write_bytes(b"\xef\xbb\xbfabc\xff")

    result = read_one(path)

    assert result.rejected[0].reason == "invalid UTF-8 at byte 6: save the file as UTF-8"


def test_same_text_twice_one_document(tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    second = tmp_path / "b.md"
    first.write_bytes(b"Same words.\nSecond line.")
    second.write_bytes(b"\xef\xbb\xbfSame words.\r\nSecond line.\r\n")

    result = read_documents([first, second], tenant="default", memory="default", max_file_bytes=DEFAULT_LIMIT)

    assert len(result.documents) == 1
    assert result.documents[0].source == str(first)
    assert result.duplicates == 1
    assert result.rejected == []


def test_ids_depend_on_namespace(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text("One shared note.", encoding="utf-8")

    first = read_documents([path], tenant="acme", memory="notes", max_file_bytes=DEFAULT_LIMIT).documents[0]
    other_tenant = read_documents([path], tenant="globex", memory="notes", max_file_bytes=DEFAULT_LIMIT).documents[0]
    other_memory = read_documents([path], tenant="acme", memory="drafts", max_file_bytes=DEFAULT_LIMIT).documents[0]

    assert first.id != other_tenant.id
    assert first.id != other_memory.id
    assert other_tenant.tenant == "globex"
    assert other_memory.memory == "drafts"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read files without read permission")
def test_unreadable_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "locked.txt"
    path.write_text("secret", encoding="utf-8")
    path.chmod(0)

    try:
        result = read_one(path)
    finally:
        path.chmod(0o600)

    assert "cannot read file: Permission denied" in result.rejected[0].reason


def test_vanished_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"

    result = read_one(path)

    assert result.rejected[0].source == str(path)
    assert result.rejected[0].reason.startswith("cannot read file: No such file or directory")


def test_folder_path_rejected_as_not_regular(tmp_path: Path) -> None:
    folder = tmp_path / "folder.txt"
    folder.mkdir()

    result = read_one(folder)

    assert result.rejected[0].reason.startswith("not a regular file")


def test_invalid_zip_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"this is not a zip archive")

    result = read_one(path)

    assert result.rejected[0].reason.startswith("invalid zip archive")


def test_invalid_max_file_bytes(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_file_bytes=0"):
        read_documents([], tenant="default", memory="default", max_file_bytes=0)


def test_podcast_folder_read_fast(tmp_path: Path, podcast_members: list[str]) -> None:
    paths = extract_transcripts(podcast_members, tmp_path / "podcasts")

    started = time.perf_counter()
    result = read_documents(list_input_files(tmp_path / "podcasts"), tenant="default", memory="default", max_file_bytes=DEFAULT_LIMIT)
    elapsed = time.perf_counter() - started

    assert len(paths) == PODCAST_COUNT
    assert len(result.documents) == PODCAST_COUNT
    assert result.rejected == []
    # About 0.3 s on a shared 2-core machine; the bound only catches gross slowdowns.
    assert elapsed < 5.0


def test_podcast_zip_read_whole(podcast_members: list[str]) -> None:
    result = read_one(PODCAST_ZIP)

    assert len(result.documents) == PODCAST_COUNT
    assert result.rejected == []
    first = result.documents[0]
    assert first.source == f"{PODCAST_ZIP}!{podcast_members[0]}"
    assert first.metadata[SOURCE_METADATA_KEY]["member"] == podcast_members[0]
    assert first.title == Path(podcast_members[0]).stem
    assert "\r" not in first.text

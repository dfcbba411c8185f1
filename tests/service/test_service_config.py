"""API key parsing, the service settings and the `graphmem serve` start-up checks, without a running server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphmem_core.errors import ConfigurationError
from graphmem_core.settings import Settings
from graphmem_service.auth import KeyRing, key_digest, load_key_ring, parse_api_keys, read_api_keys_file
from tests.conftest import PROJECT_ROOT

KEY_ONE = "first-test-key-0123456789"
KEY_TWO = "second-test-key-0123456789"


def test_parse_keys_with_memories():
    keys = parse_api_keys(f"{KEY_ONE}:tenant-a, {KEY_TWO}:tenant-b:default|notes")

    assert [key.tenant for key in keys] == ["tenant-a", "tenant-b"]
    assert keys[0].memories is None
    assert keys[0].allows("anything")
    assert keys[1].memories == frozenset({"default", "notes"})
    assert keys[1].allows("notes")
    assert not keys[1].allows("other")
    assert keys[0].digest == key_digest(KEY_ONE)
    assert KEY_ONE not in repr(keys)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f"{KEY_ONE}", "fields"),
        (f"{KEY_ONE}:tenant:default:extra", "fields"),
        ("short:tenant-a", "at least 16"),
        (f"{KEY_ONE}: tenant-a", "tenant"),
        (f"{KEY_ONE}:tenant-a:", "memory"),
    ],
)
def test_parse_keys_invalid(text: str, fragment: str):
    with pytest.raises(ConfigurationError, match=fragment) as raised:
        parse_api_keys(text)

    assert KEY_ONE not in str(raised.value)


def test_keys_file_entries(tmp_path: Path):
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps([{"key": KEY_ONE, "tenant": "tenant-a"}, {"sha256": key_digest(KEY_TWO).upper(), "tenant": "tenant-b", "memories": ["default"]}]),
        encoding="utf-8",
    )

    ring = KeyRing(read_api_keys_file(path))

    assert ring.lookup(KEY_ONE).tenant == "tenant-a"
    assert ring.lookup(KEY_TWO).memories == frozenset({"default"})
    assert ring.lookup("not-a-configured-key-000") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"key": KEY_ONE, "tenant": "tenant-a"}), "JSON list"),
        (json.dumps([{"key": KEY_ONE, "sha256": key_digest(KEY_ONE), "tenant": "tenant-a"}]), "exactly one"),
        (json.dumps([{"sha256": "abc", "tenant": "tenant-a"}]), "64 hex digits"),
        (json.dumps([{"key": KEY_ONE, "tenant": "tenant-a", "role": "admin"}]), "role"),
        (json.dumps([{"key": KEY_ONE, "tenant": "tenant-a", "memories": []}]), "no memories"),
    ],
)
def test_keys_file_invalid(tmp_path: Path, content: str, fragment: str):
    path = tmp_path / "keys.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigurationError, match=fragment) as raised:
        read_api_keys_file(path)

    assert KEY_ONE not in str(raised.value)


def test_duplicate_key_rejected():
    with pytest.raises(ConfigurationError, match="twice"):
        KeyRing(parse_api_keys(f"{KEY_ONE}:tenant-a,{KEY_ONE}:tenant-b"))


def test_no_keys_rejected():
    with pytest.raises(ConfigurationError, match="GRAPHMEM_API_KEYS"):
        load_key_ring(Settings())


def test_service_settings_from_env(tmp_path: Path):
    settings = Settings.from_env(
        {
            "GRAPHMEM_API_KEYS": f"{KEY_ONE}:tenant-a",
            "GRAPHMEM_API_KEYS_FILE": str(tmp_path / "keys.json"),
            "GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS": "2.5",
            "GRAPHMEM_SERVICE_MAX_BODY_BYTES": "4096",
            "GRAPHMEM_BLAS_THREADS": "2",
        }
    )

    assert settings.api_keys is not None
    assert settings.api_keys.get_secret_value() == f"{KEY_ONE}:tenant-a"
    assert KEY_ONE not in repr(settings)
    assert settings.api_keys_file == tmp_path / "keys.json"
    assert settings.service_request_timeout_seconds == 2.5
    assert settings.service_max_body_bytes == 4096
    assert settings.blas_threads == 2
    assert Settings.from_env({}).blas_threads == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS", "0"),
        ("GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS", "soon"),
        ("GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS", "86400"),
        ("GRAPHMEM_SERVICE_MAX_BODY_BYTES", "100"),
        ("GRAPHMEM_BLAS_THREADS", "-1"),
        ("GRAPHMEM_BLAS_THREADS", "many"),
    ],
)
def test_service_settings_invalid(name: str, value: str):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_serve_without_keys_exits_2(tmp_path: Path):
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GRAPHMEM_")}
    environment["GRAPHMEM_HOME"] = str(tmp_path / "home")

    completed = subprocess.run(
        [sys.executable, "-m", "graphmem_dagster.cli", "serve", "--port", "1"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2, completed.stderr
    assert "GRAPHMEM_API_KEYS" in completed.stderr


def run_in_new_interpreter(script: str):
    """Run `script` in a fresh Python process and return the JSON it prints, for settings that apply to a whole process."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_blas_threads_limited_in_subprocess():
    blas_threads = run_in_new_interpreter(
        "import json, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from graphmem_service.state import limit_blas_threads\n"
        "limit_blas_threads(1)\n"
        "print(json.dumps([pool['num_threads'] for pool in threadpool_info() if pool['user_api'] == 'blas']))\n"
    )

    assert blas_threads
    assert set(blas_threads) == {1}


def test_freeze_heap_collects_then_freezes():
    outcome = run_in_new_interpreter(
        "import gc, json, types, weakref\n"
        "from graphmem_service.state import freeze_heap\n"
        "class Node: pass\n"
        "garbage = Node(); garbage.self = garbage; dead = weakref.ref(garbage); del garbage\n"
        "gc.disable()\n"
        "freeze_heap(types.SimpleNamespace(version=3))\n"
        "print(json.dumps({'collected': dead() is None, 'frozen': gc.get_freeze_count()}))\n"
    )

    assert outcome["collected"]
    assert outcome["frozen"] > 1000

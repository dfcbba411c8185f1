"""The search page in headless Chromium: it runs a query and shows the entity graph drawn by the server.

CI needs the Debian package `chromium` (`apt-get install -y chromium`); without it these tests skip,
or fail under GRAPHMEM_TEST_REQUIRE_SERVICES=1.
"""

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest

from graphmem_service.svg import TYPE_COLOURS
from tests.service.conftest import KEY_A, ServiceProcess

pytestmark = pytest.mark.slow

QUESTION = "How do engineers think about creativity and building new technology?"

WINDOW_WIDTH = 1200
WINDOW_HEIGHT = 800

# The page puts the passages on the left and the 720-pixel drawing on the right, so in a window
# 1200 pixels wide the drawing starts right of this column.
GRAPH_LEFT_EDGE = 400

# A node is a disc of radius 6 to 14 pixels, so a few nodes cover hundreds of pixels of their colour.
MIN_NODE_PIXELS = 300

CHROMIUM_SECONDS = 90

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
    # Virtual time waits for pending fetches, so the screenshot is taken after the page has drawn.
    "--virtual-time-budget=20000",
]


def chromium_binary() -> str:
    """Return the path of Chromium, or skip (fail under GRAPHMEM_TEST_REQUIRE_SERVICES=1) when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    message = "chromium not found: install the Debian package chromium (apt-get install -y chromium) to run the browser tests"
    if os.environ.get("GRAPHMEM_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; GRAPHMEM_TEST_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(message)


def screenshot(url: str, output: Path) -> np.ndarray:
    """Load `url` in headless Chromium with a new profile and return the screenshot as an RGB array."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="graphmem-chromium-") as profile:
        completed = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={output}", url],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_SECONDS,
            check=False,
        )
    assert output.is_file(), f"chromium wrote no screenshot (exit code {completed.returncode}):\n{completed.stderr[-3000:]}"
    return decode_png(output.read_bytes())


def _paeth(left: int, up: int, up_left: int) -> int:
    estimate = left + up - up_left
    distance_left, distance_up, distance_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
    if distance_left <= distance_up and distance_left <= distance_up_left:
        return left
    if distance_up <= distance_up_left:
        return up
    return up_left


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG into an (height, width, 3) array, undoing each row's filter."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    position = 8
    compressed = bytearray()
    header = None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        content = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", content)
        elif kind == b"IDAT":
            compressed.extend(content)
    assert header is not None, "the PNG has no IHDR chunk"
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8, f"unsupported PNG bit depth {depth}"
    assert colour_type in (2, 6), f"unsupported PNG colour type {colour_type}: expected RGB (2) or RGBA (6)"
    assert interlace == 0, "interlaced PNG files are not supported"

    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(bytes(compressed))
    previous = bytearray(stride)
    rows = []
    for row_index in range(height):
        start = row_index * (stride + 1)
        kind = raw[start]
        row = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                row[i] = (row[i] + row[i - channels]) & 0xFF
        elif kind == 2:
            row = bytearray((np.frombuffer(row, np.uint8) + np.frombuffer(previous, np.uint8)).tobytes())
        elif kind == 3:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                up_left = previous[i - channels] if i >= channels else 0
                row[i] = (row[i] + _paeth(left, previous[i], up_left)) & 0xFF
        rows.append(row)
        previous = row
    pixels = np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, channels)
    return pixels[:, :, :3]


def node_colour_mask(pixels: np.ndarray) -> np.ndarray:
    """Return a boolean (height, width) mask of the pixels that have exactly one of the chromatic node colours.

    Grey nodes are left out, because anti-aliased text on the page has grey pixels of every shade.
    """
    mask = np.zeros(pixels.shape[:2], dtype=bool)
    for colour in TYPE_COLOURS.values():
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
        if int(rgb.max()) - int(rgb.min()) < 32:
            continue
        mask |= np.all(pixels == rgb, axis=-1)
    return mask


def test_page_draws_graph(main_server: ServiceProcess, tmp_path: Path):
    chromium_binary()
    # The page requests the same query and drawing, so Chromium reads them from the service's cache.
    with httpx.Client(base_url=main_server.url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60.0) as client:
        assert client.post("/v1/query", json={"query": QUESTION, "memory": "default", "mode": "hybrid"}).status_code == 200
        assert client.get("/v1/graph.svg", params={"query": QUESTION, "memory": "default", "mode": "hybrid"}).status_code == 200

    fragment = urlencode({"q": QUESTION, "key": KEY_A})
    pixels = screenshot(f"{main_server.url}/#{fragment}", tmp_path / "page.png")

    assert pixels.shape == (WINDOW_HEIGHT, WINDOW_WIDTH, 3)
    mask = node_colour_mask(pixels)
    assert mask.sum() >= MIN_NODE_PIXELS, f"only {mask.sum()} pixels of node colours in the screenshot {tmp_path / 'page.png'}"
    columns = np.nonzero(mask.any(axis=0))[0]
    assert columns.min() >= GRAPH_LEFT_EDGE, "node colours should appear only in the drawing on the right"
    assert KEY_A not in main_server.log(), "the key travels in the URL fragment, which the browser never sends"


def test_page_without_query_draws_nothing(main_server: ServiceProcess, tmp_path: Path):
    pixels = screenshot(f"{main_server.url}/", tmp_path / "empty.png")

    assert pixels.shape == (WINDOW_HEIGHT, WINDOW_WIDTH, 3)
    assert node_colour_mask(pixels).sum() == 0

"""Line charts as RGB PNG files with NumPy and zlib alone (no plotting library is a dependency).

:func:`write_chart` draws series of points on linear or log10 axes with a grid, tick labels, axis titles and a legend,
in a 5×7 pixel font of the characters the project's charts need: the training loss curves (``mmfree train``) and
the roofline of ``mmfree bench``.
"""

import math
import struct
import zlib

import numpy as np

__all__ = ["write_chart"]

# 5×7 glyphs, one 5-bit row each (bit 4 is the leftmost pixel)
_GLYPHS = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12), ".": (0, 0, 0, 0, 0, 12, 12), "-": (0, 0, 0, 31, 0, 0, 0),
    "/": (1, 2, 2, 4, 8, 8, 16), " ": (0,) * 7, "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (30, 17, 17, 17, 17, 17, 30), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31), "M": (17, 27, 21, 21, 17, 17, 17),
    "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14), "P": (30, 17, 17, 30, 16, 16, 16),
    "R": (30, 17, 17, 30, 20, 18, 17), "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10),
    "X": (17, 17, 10, 4, 10, 17, 17), "Y": (17, 17, 10, 4, 4, 4, 4),
}
_SCALE = 2  # pixels per glyph pixel
_INK, _GRID = (40, 40, 40), (225, 225, 225)


def _text(image, x, y, text, color=_INK):
    """Draw ``text`` with its top-left corner at (x, y)."""
    for k, char in enumerate(text.upper()):
        for row, bits in enumerate(_GLYPHS[char]):
            for col in range(5):
                if bits >> (4 - col) & 1:
                    px, py = x + (6 * k + col) * _SCALE, y + row * _SCALE
                    image[py:py + _SCALE, px:px + _SCALE] = color


def _text_width(text):
    return (6 * len(text) - 1) * _SCALE


def _line(image, x0, y0, x1, y1, color, width=2):
    count = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    for x, y in zip(np.linspace(x0, x1, count).round().astype(int), np.linspace(y0, y1, count).round().astype(int)):
        image[y:y + width, x:x + width] = color


def _ticks(low, high, log, most=8):
    """``(values, labels)`` of round ticks covering [low, high] (in log10 units on a log axis)."""
    if log:
        values = list(range(math.floor(low), math.ceil(high) + 1)) if high > low else [math.floor(low), math.floor(low) + 1]
        return values, [f"1E{value}" for value in values]
    span = max(high - low, 1e-9)
    step = next(m * 10.0 ** e for e in range(math.floor(math.log10(span / most)), 20) for m in (1, 2, 2.5, 5)
                if span / (m * 10.0 ** e) <= most)
    values = [k * step for k in range(math.floor(low / step), math.ceil(high / step) + 1)]
    decimals = next(d for d in range(7) if abs(step * 10 ** d - round(step * 10 ** d)) < 1e-6)
    return values, [f"{value:.{decimals}f}" for value in values]


def _write_png(path, image):
    """Write an (H, W, 3) uint8 array as an 8-bit RGB PNG."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))  # filter type 0 on every row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_chart(path, series, *, x_title, y_title, log=False, x_from_zero=False, width=720, height=440):
    """Plot ``series`` as an RGB PNG at ``path``.

    Parameters
    ----------
    series : list of (name, points, color, markers)
        ``points``: (N, 2) x, y values, joined by lines; ``color``: RGB tuple; ``markers``: also a square at each
        point (a single point always gets one).
    x_title, y_title : str
        Axis titles (the font has digits, capitals and ``. - / ( )``).
    log : bool
        Both axes log10 (values must be positive).
    x_from_zero : bool
        A linear x axis starts at 0.
    """
    data = [(name, np.asarray(points, dtype=np.float64).reshape(-1, 2), color, markers)
            for name, points, color, markers in series]
    points = np.concatenate([p for _, p, _, _ in data])
    if len(points) == 0:
        raise ValueError("no points to plot")
    if log:
        if (points <= 0).any():
            raise ValueError("a log chart needs positive values")
        data = [(name, np.log10(p), color, markers) for name, p, color, markers in data]
        points = np.log10(points)
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 80, width - 20, 40, height - 50
    x_ticks, x_labels = _ticks(0 if x_from_zero and not log else points[:, 0].min(), points[:, 0].max(), log)
    y_ticks, y_labels = _ticks(points[:, 1].min(), points[:, 1].max(), log)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x, y):
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left), bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

    for value, text in zip(x_ticks, x_labels):
        x = round(px(value, y_lo)[0])
        _line(image, x, top, x, bottom, _GRID, 1)
        _text(image, min(x - _text_width(text) // 2, width - _text_width(text)), bottom + 8, text)
    for value, text in zip(y_ticks, y_labels):
        y = round(px(x_lo, value)[1])
        _line(image, left, y, right, y, _GRID, 1)
        _text(image, max(left - 8 - _text_width(text), 0), y - 7, text)
    _line(image, left, bottom, right, bottom, _INK, 1)
    _line(image, left, top, left, bottom, _INK, 1)
    _text(image, (left + right - _text_width(x_title)) // 2, bottom + 30, x_title)
    _text(image, 8, 12, y_title)
    for _, p, color, markers in data:
        coords = [px(x, y) for x, y in p]
        for (x0, y0), (x1, y1) in zip(coords, coords[1:]):
            _line(image, x0, y0, x1, y1, color)
        if markers or len(coords) == 1:
            for x, y in coords:
                image[max(round(y) - 3, 0):round(y) + 4, max(round(x) - 3, 0):round(x) + 4] = color
    legend_x = right - max(_text_width(name) for name, *_ in data) - 40
    for k, (name, _, color, _) in enumerate(data):
        _line(image, legend_x, top + 12 + 22 * k, legend_x + 28, top + 12 + 22 * k, color, 3)
        _text(image, legend_x + 36, top + 6 + 22 * k, name)
    _write_png(path, image)

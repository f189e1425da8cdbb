"""Cover art: one untrusted image in, square JPEGs of the sizes players ask for out.

Pillow opens the image with a pixel budget (a decompression bomb is refused,
not decoded), the centre square is cut, and each size is a fresh JPEG
(metadata dropped). Sizes match the storage keys `covers/{artist}/{track}/{size}.jpg`.
"""

from __future__ import annotations

import io

SIZES = (1200, 600, 300, 64)
MAX_PIXELS = 50_000_000
JPEG_QUALITY = 85


class ArtworkError(ValueError):
    """The bytes are not an image we can use."""


def make_covers(data: bytes, sizes: tuple[int, ...] = SIZES) -> dict[int, bytes]:
    """JPEG bytes per size; a source smaller than a size is not scaled up past itself."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ArtworkError("the image is too large")
            img.load()
            img = ImageOps.exif_transpose(img)
            image = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise ArtworkError(f"not a usable image ({e})") from None
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    out: dict[int, bytes] = {}
    for size in sizes:
        target = min(size, side)
        resized = square if target == side else square.resize((target, target), Image.LANCZOS)
        buf = io.BytesIO()
        resized.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=size >= 600)
        out[size] = buf.getvalue()
    return out

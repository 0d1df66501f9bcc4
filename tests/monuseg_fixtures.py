"""MoNuSeg-format fixtures: RGB TIFFs written by Pillow (LZW or PackBits) and Aperio XML.

Every polygon edge sits on a half-integer, so no pixel centre lies on an edge and the pixel
count of each polygon is exact by hand. The image is SHAPE = (40 rows, 50 columns).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SHAPE = (40, 50)  # (H, W)
MPP = 0.252


def rectangle(x0: float, x1: float, y0: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def diamond(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]


# (x, y) vertices, in file order. Pixel rows/columns are the integers strictly inside.
RECT = rectangle(4.5, 9.5, 4.5, 10.5)  # cols 5-9, rows 5-10: 30 px
DIAMOND = diamond(30, 10, 2.5)  # |dx| + |dy| <= 2: 1 + 4 + 8 = 13 px
SMALL = rectangle(21.5, 27.5, 22.5, 26.5)  # cols 22-27, rows 23-26: 24 px, listed first
BIG = rectangle(14.5, 24.5, 19.5, 29.5)  # cols 15-24, rows 20-29: 100 px, 12 of them SMALL's
RIGHT_EDGE = rectangle(44.5, 54.5, 30.5, 35.5)  # cols 45-49 of 45-54 in the image: 25 px
CORNER = rectangle(-3.5, 2.5, -2.5, 1.5)  # cols 0-2, rows 0-1 in the image: 6 px
TWO_VERTICES = [(5.0, 30.0), (10.0, 35.0)]  # degenerate: skipped with a warning

# Two <Annotation> elements, as ImageScope writes when a user starts a second layer.
ANNOTATIONS = [[RECT, DIAMOND, SMALL], [BIG, RIGHT_EDGE, CORNER, TWO_VERTICES]]
POLYGONS = [p for layer in ANNOTATIONS for p in layer]
# Instance id (1.. in file order of the kept regions) -> pixel count.
AREAS = {1: 30, 2: 13, 3: 24, 4: 88, 5: 25, 6: 6}


def expected_instances() -> np.ndarray:
    """The instance map of POLYGONS, drawn by hand with slices (rows, then columns)."""
    out = np.zeros(SHAPE, np.int32)
    out[5:11, 5:10] = 1
    for dy in range(-2, 3):
        half = 2 - abs(dy)
        out[10 + dy, 30 - half : 31 + half] = 2
    out[20:30, 15:25] = 4
    out[23:27, 22:28] = 3  # the smaller polygon keeps the overlap
    out[31:36, 45:50] = 5
    out[0:2, 0:3] = 6
    return out


def tile_image(shape: tuple[int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 with smooth ramps (which LZW compresses) and noise (so a bit-exact
    round trip means something)."""
    rows, cols = np.indices(shape)
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 8, (*shape, 3))
    ramps = np.stack([rows * 5, cols * 4, (rows + cols) * 2], axis=-1)
    return ((ramps + noise) % 256).astype(np.uint8)


def write_tiff(path: Path, image: np.ndarray, compression: str = "tiff_lzw") -> Path:
    """MoNuSeg training tiles are LZW ("tiff_lzw"), its test tiles PackBits ("packbits")."""
    Image.fromarray(image).save(path, compression=compression)
    return path


def aperio_xml(annotations: list, mpp: float | None = MPP) -> str:
    """ImageScope XML text: one <Annotation> per layer, one <Region> per polygon."""
    mpp_attr = f' MicronsPerPixel="{mpp}"' if mpp is not None else ""
    lines = [f"<Annotations{mpp_attr}>"]
    region_id = 0
    for layer_id, layer in enumerate(annotations, start=1):
        lines += [
            f'  <Annotation Id="{layer_id}" Name="" Type="4" LineColor="65280" Visible="1">',
            '    <Attributes><Attribute Name="Description" Id="0" Value=""/></Attributes>',
            "    <Regions>",
            '      <RegionAttributeHeaders><AttributeHeader Id="9999" Name="Region"/>'
            "</RegionAttributeHeaders>",
        ]
        for polygon in layer:
            region_id += 1
            lines += [
                f'      <Region Id="{region_id}" Type="0" Zoom="5" Area="0" Text="">',
                "        <Attributes/>",
                "        <Vertices>",
                *(f'          <Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in polygon),
                "        </Vertices>",
                "      </Region>",
            ]
        lines += ["    </Regions>", "    <Plots/>", "  </Annotation>"]
    lines.append("</Annotations>")
    return "\n".join(lines) + "\n"


def write_xml(path: Path, annotations: list | None = None, mpp: float | None = MPP) -> Path:
    path.write_text(aperio_xml(ANNOTATIONS if annotations is None else annotations, mpp))
    return path


def write_tile(root: Path, stem: str, compression: str = "tiff_lzw", seed: int = 0) -> Path:
    """``root/<stem>.tif`` and ``root/<stem>.xml`` with the known POLYGONS; returns the tif."""
    root.mkdir(parents=True, exist_ok=True)
    write_xml(root / f"{stem}.xml")
    return write_tiff(root / f"{stem}.tif", tile_image(seed=seed), compression)

"""MoNuSeg nuclei tiles in their original layout, and a generic instance-mask folder reader.

MoNuSeg layout read: ``root/TCGA-*.tif`` (1000 x 1000 H&E tiles, LZW in the training set,
PackBits in the test set) each with ``root/<same stem>.xml``, an Aperio ImageScope annotation
holding one polygon per nucleus. Pillow decodes both compressions; tifffile would need
imagecodecs for LZW, which we do not depend on.

Coordinates: Aperio vertices are (X, Y) in pixels of the tile, X the column and Y the row,
and pixel (row r, column c) has its centre at (X=c, Y=r). A pixel belongs to a polygon when
its centre is inside it (``skimage.draw.polygon``).

Other nuclei datasets: ``root/images/<stem>.<png|tif|tiff>`` with
``root/labels/<stem>.<png|tif|tiff|npy>``, the label an integer instance map (0 background).

Composition: ``find_tiles`` -> ``load_monuseg_tile`` per pair, or ``find_instance_pairs`` ->
``load_instance_pair`` per pair. Both give an image (H, W, 3) uint8 and instances (H, W) int32.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import draw

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits per sample


def _open_image(path: Path) -> Image.Image:
    """Open and fully decode ``path``: Pillow decodes lazily, so a truncated or corrupt file
    would otherwise only fail later, far from its name."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot decode image ({err})") from None
    return image


def read_rgb_tiff(path: str | Path) -> np.ndarray:
    """The image as (H, W, 3) uint8. Any format Pillow decodes works (LZW and PackBits TIFF,
    PNG, JPEG). RGBA, greyscale and palette images become RGB (alpha dropped, not
    composited); images with more than 8 bits per sample are refused rather than clipped."""
    return read_rgb_image(path)[0]


#: A file resolution coarser than this is a screen default (72 or 96 dpi), not a scanner's.
MAX_MICRONS_PER_PIXEL = 10.0


def read_rgb_image(path: str | Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """``read_rgb_tiff``'s image and the pixel size (x, y) in µm the file states (TIFF
    resolution tags or PNG pHYs, read by Pillow as dpi), or None when it states none or a
    screen default coarser than ``MAX_MICRONS_PER_PIXEL``."""
    path = Path(path)
    image = _open_image(path)
    if image.mode in _WIDE_MODES:
        raise ValueError(f"{path}: image mode {image.mode!r}, expected 8-bit RGB(A)/greyscale")
    dpi = image.info.get("dpi")
    size = None
    if isinstance(dpi, tuple) and len(dpi) == 2 and min(float(d) for d in dpi) > 0:
        size = tuple(25400.0 / float(d) for d in dpi)  # 25,400 µm per inch
        size = size if max(size) <= MAX_MICRONS_PER_PIXEL else None
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy(), size


def _float_attribute(path: Path, element: ET.Element, name: str, where: str) -> float:
    try:
        return float(element.attrib[name])
    except KeyError:
        raise ValueError(f"{path}: {where} has no {name} attribute") from None
    except ValueError:
        raise ValueError(
            f"{path}: {where} {name}={element.attrib[name]!r} is not a number"
        ) from None


def parse_aperio_xml(path: str | Path) -> tuple[list[np.ndarray], float | None]:
    """Polygons of an Aperio ImageScope XML and its MicronsPerPixel (None if absent or empty).

    Every ``<Region>`` of every ``<Annotation>`` gives one float64 (K, 2) array of (x, y)
    vertices in pixels, in file order; Z is ignored. A region without vertices gives a (0, 2)
    array, left for ``rasterize_polygons`` to skip and count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation XML not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: malformed XML ({err})") from None
    if root.tag != "Annotations":
        raise ValueError(f"{path}: root element <{root.tag}>, expected Aperio <Annotations>")
    mpp_text = root.attrib.get("MicronsPerPixel", "").strip()
    mpp = _float_attribute(path, root, "MicronsPerPixel", "<Annotations>") if mpp_text else None
    regions = list(root.iter("Region"))
    if not regions:
        raise ValueError(f"{path}: no <Region> annotations (expected one per nucleus)")
    polygons = []
    for number, region in enumerate(regions, start=1):
        where = f"<Region Id={region.attrib.get('Id', '?')!r}> (#{number})"
        vertices = [
            (
                _float_attribute(path, vertex, "X", where),
                _float_attribute(path, vertex, "Y", where),
            )
            for vertex in region.iter("Vertex")
        ]
        polygons.append(np.array(vertices, dtype=np.float64).reshape(-1, 2))
    return polygons, mpp


def polygon_area(vertices: np.ndarray) -> float:
    """Area enclosed by (x, y) ``vertices`` in px² (shoelace formula; open or closed ring)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def rasterize_polygons(
    polygons: Sequence[np.ndarray], shape: tuple[int, int], source: str = ""
) -> np.ndarray:
    """Instance map (H, W) int32 of (x, y) polygons: 0 background, ids 1..N consecutive in the
    order of the polygons kept.

    Pixels whose centre is inside a polygon belong to it; parts beyond the image are clipped.
    Overlaps: a pixel claimed by several polygons goes to the one of smallest area (shoelace,
    px²; equal areas: the later one), so a small nucleus is not swallowed by a larger
    neighbour, whatever the drawing order. A large polygon may thus lose pixels, or be split.

    Skipped (no id): polygons with fewer than 3 finite vertices, with no pixel centre inside
    the image, or whose pixels all went to smaller polygons. If any were skipped, one warning
    names ``source`` (e.g. the XML file) and the counts.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"{source or 'rasterize_polygons'}: shape {shape}, expected (H, W) >= 1")
    height, width = int(shape[0]), int(shape[1])
    drawn: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    areas: dict[int, float] = {}
    too_few = outside = 0
    for index, polygon in enumerate(polygons):
        vertices = np.asarray(polygon, dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[1] != 2:
            raise ValueError(
                f"{source or 'rasterize_polygons'}: polygon #{index + 1} has shape "
                f"{vertices.shape}, expected (K, 2) (x, y) vertices"
            )
        vertices = vertices[np.isfinite(vertices).all(axis=1)]
        if len(vertices) < 3:
            too_few += 1
            continue
        rows, cols = draw.polygon(vertices[:, 1], vertices[:, 0], shape=(height, width))
        if rows.size == 0:
            outside += 1
            continue
        drawn[index], areas[index] = (rows, cols), polygon_area(vertices)
    owner = np.zeros((height, width), dtype=np.int64)  # polygon index + 1
    for index in sorted(drawn, key=lambda i: -areas[i]):  # stable: equal areas in file order
        rows, cols = drawn[index]
        owner[rows, cols] = index + 1
    kept = np.unique(owner)
    kept = kept[kept > 0]
    relabel = np.zeros(len(polygons) + 1, dtype=np.int32)
    relabel[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    covered = len(drawn) - len(kept)
    skipped = too_few + outside + covered
    if skipped:
        warnings.warn(
            f"{source or 'rasterize_polygons'}: skipped {skipped} of {len(polygons)} polygons "
            f"({too_few} with < 3 vertices, {outside} with no pixel inside the {height}x{width} "
            f"image, {covered} fully covered by smaller ones)",
            stacklevel=2,
        )
    return relabel[owner]


# The official training download's subfolders (tiles and their Aperio XMLs).
OFFICIAL_IMAGES, OFFICIAL_XMLS = "Tissue Images", "Annotations"


def find_tiles(root: str | Path) -> list[tuple[Path, Path]]:
    """(tif, xml) pairs of a MoNuSeg folder, sorted by file name. Every ``*.tif``/``*.tiff``
    (the ``TCGA-*`` tiles) needs the ``.xml`` of the same stem, either beside it (the test
    set's layout) or, as in the official training download, with the tiles in
    ``Tissue Images/`` and the XMLs in ``Annotations/`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: MoNuSeg directory not found")
    tif_dir, xml_dir = root, root
    if (root / OFFICIAL_IMAGES).is_dir() and (root / OFFICIAL_XMLS).is_dir():
        tif_dir, xml_dir = root / OFFICIAL_IMAGES, root / OFFICIAL_XMLS
    tifs = sorted(p for p in tif_dir.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES)
    if not tifs:
        raise FileNotFoundError(
            f"{tif_dir}: no *.tif tiles (expected TCGA-*.tif with the .xml beside, or "
            f"'{OFFICIAL_IMAGES}/' and '{OFFICIAL_XMLS}/' subfolders)"
        )
    pairs = []
    for tif in tifs:
        xml = xml_dir / f"{tif.stem}.xml"
        if not xml.is_file():
            raise FileNotFoundError(f"{tif}: annotation {xml} not found")
        pairs.append((tif, xml))
    return pairs


def load_monuseg_tile(tif: str | Path, xml: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8 and instances (H, W) int32 of one tile (rules of
    ``rasterize_polygons``; skipped regions are reported in a warning naming the XML)."""
    image = read_rgb_tiff(tif)
    polygons, _ = parse_aperio_xml(xml)
    return image, rasterize_polygons(polygons, image.shape[:2], source=str(xml))


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise ValueError(f"{found[path.stem]} and {path}: two files for one stem")
            found[path.stem] = path
    return found


def find_instance_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, label) pairs of ``root/images`` and ``root/labels``, matched by stem and sorted
    by it. Labels without an image are ignored; an image without a label is an error."""
    root = Path(root)
    image_dir, label_dir = root / "images", root / "labels"
    for folder in (root, image_dir, label_dir):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: directory not found (expected root/images/ and root/labels/)"
            )
    images = _files_by_stem(image_dir, IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    labels = _files_by_stem(label_dir, LABEL_SUFFIXES)
    pairs = []
    for stem, image in sorted(images.items()):
        if stem not in labels:
            raise FileNotFoundError(
                f"{image}: no label {label_dir / stem}.<{'|'.join(s[1:] for s in LABEL_SUFFIXES)}>"
            )
        pairs.append((image, labels[stem]))
    return pairs


def read_label_map(path: str | Path) -> np.ndarray:
    """A 2D integer instance map (0 background) from .npy or a Pillow image, as int32. Ids are
    kept as stored (not renumbered); negative ids or ids beyond int32 are refused."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: label file not found")
        try:
            label = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read .npy label ({err})") from None
    else:
        label = np.asarray(_open_image(path))
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(
            f"{path}: label {label.dtype} {label.shape}, expected a 2D integer instance map"
        )
    if label.size and (label.min() < 0 or label.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{path}: label ids {label.min()}..{label.max()}, expected 0..2^31-1")
    return label.astype(np.int32)


def load_instance_pair(
    image_path: str | Path, label_path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8 and instances (H, W) int32; the label must have the image's H, W."""
    image = read_rgb_tiff(image_path)
    label = read_label_map(label_path)
    if label.shape != image.shape[:2]:
        raise ValueError(
            f"{label_path}: label shape {label.shape}, expected the (H, W) {image.shape[:2]} "
            f"of {image_path}"
        )
    return image, label

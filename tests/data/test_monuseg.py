import re
import warnings

import numpy as np
import pytest
from PIL import Image

from medprune.data.monuseg import (
    find_instance_pairs,
    find_tiles,
    load_instance_pair,
    load_monuseg_tile,
    parse_aperio_xml,
    polygon_area,
    rasterize_polygons,
    read_rgb_tiff,
)
from monuseg_fixtures import (
    AREAS,
    BIG,
    CORNER,
    MPP,
    POLYGONS,
    RECT,
    SHAPE,
    SMALL,
    TWO_VERTICES,
    expected_instances,
    tile_image,
    write_tiff,
    write_tile,
    write_xml,
)


def named(path) -> str:
    return re.escape(str(path))


def arrays(polygons) -> list[np.ndarray]:
    return [np.array(p, dtype=np.float64) for p in polygons]


def test_parse_aperio_xml_vertices_and_microns_per_pixel(tmp_path):
    polygons, mpp = parse_aperio_xml(write_xml(tmp_path / "a.xml"))
    assert mpp == MPP
    assert len(polygons) == 7  # both <Annotation> layers, in file order
    assert all(p.dtype == np.float64 and p.shape[1] == 2 for p in polygons)
    np.testing.assert_array_equal(polygons[0], [[4.5, 4.5], [9.5, 4.5], [9.5, 10.5], [4.5, 10.5]])
    np.testing.assert_array_equal(polygons[5], np.array(CORNER))  # negative coordinates kept
    assert polygons[6].shape == (2, 2)
    _, mpp = parse_aperio_xml(write_xml(tmp_path / "b.xml", mpp=None))
    assert mpp is None


def test_rasterize_known_instances_clipping_and_overlap():
    with pytest.warns(UserWarning, match=r"tile\.xml: skipped 1 of 7 .*1 with < 3 vertices"):
        instances = rasterize_polygons(arrays(POLYGONS), SHAPE, source="tile.xml")
    assert instances.dtype == np.int32 and instances.shape == SHAPE
    np.testing.assert_array_equal(instances, expected_instances())
    ids, counts = np.unique(instances[instances > 0], return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist())) == AREAS


@pytest.mark.parametrize("order", [(SMALL, BIG), (BIG, SMALL)])
def test_overlap_goes_to_the_smaller_polygon_in_either_order(order):
    instances = rasterize_polygons(arrays(order), SHAPE)
    small_id = 1 if order[0] is SMALL else 2
    assert (instances == small_id).sum() == 24
    assert (instances == 3 - small_id).sum() == 100 - 12
    assert (instances[23:27, 22:25] == small_id).all()  # the 3 x 4 shared pixels


def test_equal_areas_go_to_the_later_polygon_and_covered_ones_are_skipped():
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 .*1 fully covered by smaller ones"):
        instances = rasterize_polygons(arrays([RECT, RECT, SMALL]), SHAPE, source="dup")
    assert instances.max() == 2  # consecutive ids after the skipped one
    assert (instances == 1).sum() == 30 and (instances == 2).sum() == 24


def test_polygon_outside_the_image_is_skipped_with_one_warning():
    outside = [(60.5, 5.5), (70.5, 5.5), (70.5, 9.5)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instances = rasterize_polygons(arrays([outside, TWO_VERTICES, RECT]), SHAPE, source="s")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("s: skipped 2 of 3") and "1 with no pixel inside the 40x50" in message
    assert instances.max() == 1 and (instances == 1).sum() == 30


def test_no_warning_when_nothing_is_skipped():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        instances = rasterize_polygons(arrays([RECT]), SHAPE)
    assert (instances == 1).sum() == 30
    assert rasterize_polygons([], SHAPE).max() == 0


def test_polygon_area_in_square_pixels():
    assert polygon_area(np.array(RECT)) == 30.0
    assert polygon_area(np.array(RECT[::-1])) == 30.0  # orientation does not matter
    assert polygon_area(np.array(CORNER)) == 24.0  # the whole polygon, not its visible part


def test_rasterize_rejects_non_polygons():
    with pytest.raises(ValueError, match=r"f\.xml: polygon #1 has shape \(4,\)"):
        rasterize_polygons([np.zeros(4)], SHAPE, source="f.xml")


@pytest.mark.parametrize("compression", ["tiff_lzw", "packbits"])
def test_lzw_and_packbits_tiffs_read_back_bit_identical(tmp_path, compression):
    image = tile_image()
    path = write_tiff(tmp_path / "t.tif", image, compression)
    with Image.open(path) as written:
        assert written.info["compression"] == compression
    out = read_rgb_tiff(path)
    assert out.dtype == np.uint8 and out.shape == (*SHAPE, 3)
    np.testing.assert_array_equal(out, image)


def test_rgba_and_greyscale_tiffs_become_rgb(tmp_path):
    image = tile_image()
    rgba = np.concatenate([image, np.full((*SHAPE, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(read_rgb_tiff(write_tiff(tmp_path / "a.tif", rgba)), image)
    grey = image[..., 0]
    out = read_rgb_tiff(write_tiff(tmp_path / "g.tif", grey))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=-1))


def test_unreadable_or_wide_tiffs_raise_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=named(garbage)):
        read_rgb_tiff(garbage)
    # Pillow opens lazily: a valid header with corrupt LZW strips only fails on decoding
    corrupt = tmp_path / "corrupt.tif"
    data = bytearray(write_tiff(tmp_path / "full.tif", tile_image()).read_bytes())
    data[8:3000] = b"\xff" * 2992  # Pillow puts the strips first and the IFD last
    corrupt.write_bytes(bytes(data))
    with Image.open(corrupt) as lazy:
        assert lazy.size == (50, 40)
    with pytest.raises(ValueError, match=named(corrupt) + ": cannot decode"):
        read_rgb_tiff(corrupt)
    wide = tmp_path / "wide.tif"
    Image.fromarray(np.full(SHAPE, 1000, np.uint16)).save(wide)
    with pytest.raises(ValueError, match=named(wide) + ".*expected 8-bit"):
        read_rgb_tiff(wide)


def test_find_tiles_and_load_tile(tmp_path):
    write_tile(tmp_path, "TCGA-B", compression="packbits", seed=2)
    write_tile(tmp_path, "TCGA-A", seed=1)
    pairs = find_tiles(tmp_path)
    assert [(t.name, x.name) for t, x in pairs] == [
        ("TCGA-A.tif", "TCGA-A.xml"),
        ("TCGA-B.tif", "TCGA-B.xml"),
    ]
    with pytest.warns(UserWarning, match=named(pairs[1][1]) + ": skipped 1 of 7"):
        image, instances = load_monuseg_tile(*pairs[1])
    np.testing.assert_array_equal(image, tile_image(seed=2))
    np.testing.assert_array_equal(instances, expected_instances())


def test_find_tiles_reads_the_official_download_layout(tmp_path):
    # MoNuSeg's training download: tiles in "Tissue Images/", XMLs in "Annotations/"
    images, xmls = tmp_path / "Tissue Images", tmp_path / "Annotations"
    images.mkdir()
    xmls.mkdir()
    write_tiff(images / "TCGA-B.tif", tile_image(seed=2))
    write_tiff(images / "TCGA-A.tif", tile_image(seed=1))
    for stem in ("TCGA-A", "TCGA-B"):
        write_xml(xmls / f"{stem}.xml")
    pairs = find_tiles(tmp_path)
    assert pairs == [
        (images / "TCGA-A.tif", xmls / "TCGA-A.xml"),
        (images / "TCGA-B.tif", xmls / "TCGA-B.xml"),
    ]
    (xmls / "TCGA-B.xml").unlink()
    with pytest.raises(FileNotFoundError, match=named(xmls / "TCGA-B.xml") + " not found"):
        find_tiles(tmp_path)


def test_find_tiles_errors_name_the_folder_or_file(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=named(missing)):
        find_tiles(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.xml").write_text("<Annotations/>")
    with pytest.raises(FileNotFoundError, match=named(empty) + ": no \\*.tif"):
        find_tiles(empty)
    tif = write_tiff(empty / "TCGA-X.tiff", tile_image())
    with pytest.raises(FileNotFoundError, match=named(tif) + ".*" + named(empty / "TCGA-X.xml")):
        find_tiles(empty)


def test_bad_xml_raises_naming_the_file(tmp_path):
    no_regions = tmp_path / "empty.xml"
    no_regions.write_text('<Annotations MicronsPerPixel="0.25"><Annotation/></Annotations>')
    with pytest.raises(ValueError, match=named(no_regions) + r": no <Region> annotations"):
        parse_aperio_xml(no_regions)
    broken = tmp_path / "broken.xml"
    broken.write_text("<Annotations><Annotation>")
    with pytest.raises(ValueError, match=named(broken) + ": malformed XML"):
        parse_aperio_xml(broken)
    bad_vertex = tmp_path / "vertex.xml"
    write_xml(bad_vertex, [[[("12.5", "abc"), (1, 2), (3, 4)]]])
    with pytest.raises(ValueError, match=named(bad_vertex) + ".*Y='abc' is not a number"):
        parse_aperio_xml(bad_vertex)


def write_pair(root, stem, image, label, label_suffix):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}.png")
    label_path = root / "labels" / f"{stem}{label_suffix}"
    if label_suffix == ".npy":
        np.save(label_path, label)
    else:
        Image.fromarray(label).save(label_path)
    return root / "images" / f"{stem}.png", label_path


def test_instance_folder_reads_png_and_npy_labels(tmp_path):
    labels = expected_instances().astype(np.uint16) * 300  # ids beyond 8 bits survive 16-bit PNG
    write_pair(tmp_path, "b", tile_image(seed=1), labels, ".png")
    write_pair(tmp_path, "a", tile_image(seed=0), expected_instances(), ".npy")
    (tmp_path / "labels" / "orphan.npy").write_bytes(b"")  # a label without image is ignored
    pairs = find_instance_pairs(tmp_path)
    assert [(i.name, lab.name) for i, lab in pairs] == [("a.png", "a.npy"), ("b.png", "b.png")]
    for (image_path, label_path), seed, expected in zip(
        pairs, (0, 1), (expected_instances(), labels)
    ):
        image, instances = load_instance_pair(image_path, label_path)
        assert image.dtype == np.uint8 and instances.dtype == np.int32
        np.testing.assert_array_equal(image, tile_image(seed=seed))
        np.testing.assert_array_equal(instances, expected)


def test_instance_folder_errors_name_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=named(tmp_path / "images")):
        find_instance_pairs(tmp_path)
    image_path, _ = write_pair(tmp_path, "a", tile_image(), expected_instances(), ".npy")
    Image.fromarray(tile_image()).save(tmp_path / "images" / "b.png")
    with pytest.raises(
        FileNotFoundError,
        match=named(tmp_path / "images" / "b.png") + ".*" + named(tmp_path / "labels" / "b"),
    ):
        find_instance_pairs(tmp_path)
    for name, label in [
        ("small.npy", np.zeros((39, 50), np.int32)),
        ("float.npy", np.zeros(SHAPE, np.float32)),
        ("rgb.npy", np.zeros((*SHAPE, 3), np.uint8)),
        ("negative.npy", np.full(SHAPE, -1, np.int16)),
    ]:
        np.save(tmp_path / name, label)
        with pytest.raises(ValueError, match=named(tmp_path / name)):
            load_instance_pair(image_path, tmp_path / name)

"""Decoding a user's photos: real files written with Pillow (an EXIF-rotated phone JPEG, a 16-bit
PNG, a float TIFF, .jfif, HEIC/AVIF where this install reads them), nested class folders and
``--label-depth``, the note on skipped files, worker processes against threads, and progress
lines in a log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from faultlib import assert_clean_failure
from fileformats import write_photos
from PIL import Image

from harness.data import decode
from harness.data.decode import decode_all, readable_extensions
from harness.data.sources import DataSpec, open_source
from registry import DataError


def _upright() -> np.ndarray:
    """A portrait (120 x 160) picture whose orientation is unmistakable: red top, blue bottom,
    a green square at the top-left of the centre square that training keeps."""
    pixels = np.zeros((160, 120, 3), np.uint8)
    pixels[:80], pixels[80:], pixels[20:60, :40] = (220, 30, 30), (30, 30, 220), (30, 220, 30)
    return pixels


def _decoded(root: Path, size: int = 32, **spec: object) -> tuple[dict[str, np.ndarray], object]:
    """{file name: (H, W, 3) pixels} of every image of the folder, decoded the way training does."""
    source = open_source(DataSpec(str(root), **spec))  # type: ignore[arg-type]
    items = [item for split in source.splits.values() for item, _ in split]
    pixels = decode_all(source, items, size)
    return {Path(item).name: pixels[i].transpose(1, 2, 0) for i, item in enumerate(items)}, source


def _two_classes(root: Path) -> Path:
    """Plain photos in ``root/cat`` and ``root/dog`` that the tests add their files next to."""
    write_photos(root, classes=("cat", "dog"), per_class=4)
    return root


def test_a_phone_photo_with_exif_orientation_6_decodes_upright(own, tmp_path):
    root = _two_classes(tmp_path / "photos")
    Image.fromarray(_upright()).save(root / "cat" / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": what a phone held upright writes
    Image.fromarray(_upright()).transpose(Image.Transpose.ROTATE_90).save(root / "cat" / "phone.jpg", exif=exif,
                                                                          quality=95)
    pixels, _ = _decoded(root)
    phone, upright = pixels["phone.jpg"].astype(int), pixels["upright.jpg"].astype(int)
    assert np.abs(phone - upright).mean() < 2  # JPEG noise only
    assert phone[2, 2, 1] > 150 and phone[-2, 16, 2] > 150  # green top-left, blue bottom
    result = own("data", "check", str(root), "--format", "json", "--no-near")
    found = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    assert found["orientation"]["severity"] == "info" and found["orientation"]["count"] == 1
    assert found["orientation"]["items"][0].endswith("phone.jpg")


def _turns() -> dict[int, Image.Transpose]:
    t = Image.Transpose
    return {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270,
            7: t.TRANSVERSE, 8: t.ROTATE_90}


@pytest.mark.parametrize("turn", range(1, 9))
def test_every_exif_orientation_matches_pillows_exif_transpose(tmp_path, turn):
    """The JPEG path reads the tag from the bytes; Pillow's ``exif_transpose`` is the reference."""
    from PIL import ImageOps

    from harness.data.decode import decode_file, to_square

    exif = Image.Exif()
    exif[0x0112] = turn
    yy, xx = np.mgrid[0:90, 0:140]
    smooth = np.stack([xx * 255 // 140, yy * 255 // 90, 255 - xx * 255 // 140], -1).astype(np.uint8)
    smooth[10:40, 40:60] = (250, 250, 20)  # an asymmetric mark: every transpose moves it
    Image.fromarray(smooth).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "photo.jpg") as image:
        upright = ImageOps.exif_transpose(image)
        assert upright is not None
        reference = to_square(upright.convert("RGB"), 40).astype(int)
    decoded = decode_file(tmp_path / "photo.jpg", 40).astype(int)
    assert np.abs(decoded - reference).mean() < 3
    for other in range(2, 9):  # and every other turn of the result is far off
        wrong = np.asarray(Image.fromarray(reference.astype(np.uint8)).transpose(_turns()[other]), int)
        assert np.abs(decoded - wrong).mean() > 10


def test_a_jpeg_libjpeg_turbo_refuses_is_decoded_by_pillow(tmp_path):
    """simplejpeg is strict (a libjpeg warning is an error); Pillow is not, and decides."""
    from harness.data import jpeg
    from harness.data.decode import decode_file

    Image.new("RGB", (80, 60), (200, 40, 40)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    scan = data.index(b"\xff\xda")
    (tmp_path / "junk.jpg").write_bytes(data[:scan] + b"\0\0\0" + data[scan:])  # stray bytes before the scan
    assert jpeg.decode((tmp_path / "junk.jpg").read_bytes(), 32) is None
    assert np.abs(decode_file(tmp_path / "junk.jpg", 32).astype(int) - (200, 40, 40)).max() <= 3
    Image.new("CMYK", (80, 60), (0, 255, 255, 0)).save(tmp_path / "print.jpg")  # red, for a printer
    assert np.abs(decode_file(tmp_path / "print.jpg", 32).astype(int) - (255, 0, 0)).max() <= 3


def _png48(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb16)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_high_bit_depth_images_are_scaled_not_clipped(own, tmp_path):
    root = _two_classes(tmp_path / "photos")
    grey = np.full((40, 48), round(48 / 255 * 65535), np.uint16)
    Image.fromarray(grey).save(root / "cat" / "sixteen.png")  # opens as I;16: convert("RGB") made it white
    Image.fromarray(np.full((40, 48), 0.5, np.float32)).save(root / "dog" / "float.tif")  # mode F, 0..1
    _png48(root / "dog" / "rgb48.png", np.broadcast_to(np.array([48, 100, 250]) * 257, (40, 48, 3)))
    with Image.open(root / "cat" / "sixteen.png") as image:
        assert image.mode.startswith("I")
    pixels, _ = _decoded(root)
    assert np.abs(pixels["sixteen.png"].astype(int) - 48).max() <= 1
    assert np.abs(pixels["float.tif"].astype(int) - 128).max() <= 1
    assert np.array_equal(pixels["rgb48.png"][0, 0], [48, 100, 250])  # Pillow keeps the top 8 bits itself
    result = own("data", "check", str(root), "--format", "json", "--no-near")
    found = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    assert found["bit-depth"]["count"] == 3 and found["bit-depth"]["severity"] == "info"


def test_jfif_is_read_and_unread_files_are_counted_in_one_note(tmp_path):
    root = _two_classes(tmp_path / "photos")
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(root / "dog" / "scan.jfif", format="JPEG")
    for name in ("notes.txt", "labels.txt", "raw.cr2"):
        (root / "cat" / name).write_text("not an image")
    (root / "cat" / ".DS_Store").write_text("hidden files are nobody's images")
    pixels, source = _decoded(root)
    assert "scan.jfif" in pixels and np.abs(pixels["scan.jfif"].astype(int) - 90).max() <= 3
    skipped = [n for n in source.notes if n.startswith("skipped")]
    assert skipped == ["skipped 3 files that are not images harness reads: 2 .txt, 1 .cr2"]


def test_heic_and_avif_are_read_or_named_with_what_reads_them(tmp_path):
    root = _two_classes(tmp_path / "photos")
    (root / "cat" / "iphone.heic").write_bytes(b"\0\0\0\x18ftypheic")  # a header is enough to be counted
    (root / "dog" / "web.avif").write_bytes(b"\0\0\0\x1cftypavif")
    readable = readable_extensions()
    if ".heic" in readable:  # pillow-heif (the heif extra) is installed: a real HEIC file decodes
        Image.fromarray(np.full((40, 48, 3), (200, 30, 60), np.uint8)).save(root / "cat" / "iphone.heic",
                                                                            format="HEIF")
    if ".avif" in readable:
        Image.fromarray(np.full((40, 48, 3), (30, 200, 60), np.uint8)).save(root / "dog" / "web.avif",
                                                                            format="AVIF")
    pixels, source = _decoded(root)
    note = " ".join(n for n in source.notes if n.startswith("skipped"))
    if ".heic" in readable:
        assert np.abs(pixels["iphone.heic"].astype(int) - (200, 30, 60)).mean() < 4
    else:
        assert "1 .heic (pip install 'imgcls-harness[heif]')" in note
    if ".avif" in readable:
        assert np.abs(pixels["web.avif"].astype(int) - (30, 200, 60)).mean() < 4
    else:
        assert "1 .avif (needs Pillow >= 11.3" in note


def _nested(root: Path) -> Path:
    """animals/cat, animals/dog, plants/fern, plants/moss (+ plants/moss/old, deeper still)."""
    rng = np.random.default_rng(0)
    for k, sub in enumerate(("animals/cat", "animals/dog", "plants/fern", "plants/moss", "plants/moss/old")):
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(4):
            pixels = np.full((36, 40, 3), 40 * k, np.uint8) + rng.integers(0, 20, (36, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_nested_folders_merge_with_a_note_and_label_depth_labels_by_sub_folder(own, tmp_path):
    root = _nested(tmp_path / "nature")
    merged = open_source(DataSpec(str(root)))
    assert merged.class_names == ("animals", "plants") and merged.count() == 20
    assert ("class folders have sub-folders: 2 classes merge 4 sub-folders (e.g. animals: cat, dog); use "
            "--label-depth 2 to label by sub-folder") in merged.notes
    deep = open_source(DataSpec(str(root), label_depth=2))
    assert deep.class_names == ("animals/cat", "animals/dog", "plants/fern", "plants/moss")
    assert deep.count() == 20  # plants/moss/old is part of plants/moss
    assert any("1 class merge 1 sub-folders" in n and "--label-depth 3" in n for n in deep.notes)
    assert DataSpec(str(root)).as_dict() == {"uri": str(root), "test_fraction": 0.2, "seed": 0}  # as before
    result = own("task", "add", "nature", "--data", str(root), "--label-depth", "2", "--format", "json")
    assert result.exit_code == 0, result.output[-2000:]
    added = json.loads(result.stdout)[0]
    assert added["classes"] == 4
    from harness.data.datatask import read

    assert read(Path(added["file"])).data.label_depth == 2  # saved with the task, read back
    assert_clean_failure(own("task", "add", "flat", "--data", str(root / "animals" / "cat" / "0.png"),
                             "--label-depth", "2"), 2, "--label-depth applies to image folders")
    assert_clean_failure(own("leaderboard", "--task", "fashion-mnist", "--label-depth", "2"), 2,
                         "--label-depth goes with --data FOLDER")
    from helpers import make_plugins

    from harness.context import Context
    from harness.data.datatask import resolve

    with Context(make_plugins(), home=tmp_path / "home", quiet=True) as ctx:  # one process, two readings
        shallow = resolve(ctx, None, DataSpec(str(root)))
        nested = resolve(ctx, None, DataSpec(str(root), label_depth=2))
        assert shallow != nested and resolve(ctx, None, DataSpec(str(root), label_depth=2)) == nested
        assert len(ctx.catalogue.datasets.get(nested).class_names) == 4
    from harness.data.datatask import data_flags, default_name

    assert default_name(str(root), DataSpec(str(root), label_depth=2)) == "nature-label-depth-2"  # in other processes
    assert data_flags(DataSpec(str(root), label_depth=2)).endswith("--label-depth 2")


def _labels(source) -> dict[str, set[str]]:
    """{class name: the folders, as the walk reached them, its images came from}."""
    found: dict[str, set[str]] = {}
    for split in source.splits.values():
        for item, label in split:
            found.setdefault(source.class_names[label], set()).add(Path(item).parent.name)
    return found


def test_a_link_into_another_class_neither_hides_it_nor_relabels_its_images(own, tmp_path):
    """The outsider's case: ``circle/sq -> ../square``. The walk used to read the link first, then skip the
    real ``square/`` as seen: 2 classes, square's 20 images labelled circle."""
    root = write_photos(tmp_path / "shapes", classes=("circle", "square", "triangle"), per_class=20)
    (root / "circle" / "sq").symlink_to("../square")
    source = open_source(DataSpec(str(root)))
    assert source.class_names == ("circle", "square", "triangle") and source.count() == 60
    assert _labels(source) == {"circle": {"circle"}, "square": {"square"}, "triangle": {"triangle"}}
    square = source.class_names.index("square")
    assert sum(label == square for split in source.splits.values() for _, label in split) == 20
    assert any("did not follow 1 link" in n and "circle/sq -> square" in n for n in source.notes), source.notes
    assert not any("merge" in n for n in source.notes)  # nothing merged into circle
    for args in (("data", "check", str(root), "--no-near", "--format", "json"),
                 ("task", "add", "shapes", "--data", str(root), "--no-decode", "--format", "json")):
        result = own(*args)
        assert result.exit_code == 0, result.output[-2000:]
        assert "circle/sq -> square" in result.stderr
    assert json.loads(result.stdout)[0]["classes"] == 3


def test_links_give_each_image_one_label_and_links_outside_are_followed(tmp_path):
    root = write_photos(tmp_path / "shapes", classes=("circle", "square", "triangle"), per_class=4)
    outside = write_photos(tmp_path / "elsewhere", classes=("more", "extra", "other"), per_class=2)
    (root / "kitty").symlink_to("circle")  # a second name for a class folder
    (root / "circle" / "up").symlink_to("..")  # back up the tree: would label every image circle
    (root / "circle" / "again").symlink_to(".")  # a loop into its own class
    (root / "circle" / "other").symlink_to(outside / "other")  # outside the data: followed, as always
    (root / "square" / "tri.png").symlink_to("../triangle/0.png")  # an image of another class
    (root / "square" / "more").symlink_to(outside / "more")
    (root / "triangle" / "more").symlink_to(outside / "more")  # ... but read once
    (root / "zoo").symlink_to(outside / "extra")  # a class folder outside the data: a class, as always
    (root / "triangle" / "extra").symlink_to(outside / "extra")  # ... whose images are zoo's alone
    source = open_source(DataSpec(str(root)))
    assert source.class_names == ("circle", "square", "triangle", "zoo")
    assert _labels(source) == {"circle": {"circle", "other"}, "square": {"square", "more"}, "triangle": {"triangle"},
                               "zoo": {"zoo"}}
    assert source.count() == 4 * 3 + 2 * 3
    items = [str(item) for split in source.splits.values() for item, _ in split]
    assert len(items) == len(set(items)) and not any(item.endswith("square/tri.png") for item in items)
    note = next(n for n in source.notes if "did not follow" in n)
    assert note.startswith("did not follow 6 links"), note
    assert "kitty -> circle, circle/again -> circle, circle/up -> ." in note, note
    deep = open_source(DataSpec(str(root), label_depth=2))  # links at and above the class level: the same rule
    assert deep.class_names == ("circle/other", "square/more") and deep.count() == 4
    assert any(n.startswith("did not follow 5 links") and "kitty -> circle" in n for n in deep.notes), deep.notes


def test_worker_processes_decode_what_threads_decode_and_name_a_damaged_file(tmp_path, monkeypatch):
    root = write_photos(tmp_path / "photos", per_class=30)
    source = open_source(DataSpec(str(root)))
    items = [item for item, _ in source.splits["train"]]
    threads = decode_all(source, items, 24, workers=2)  # under PROCESS_MIN_IMAGES: threads
    monkeypatch.setattr(decode, "PROCESS_MIN_IMAGES", 10)
    processes = decode_all(source, items, 24, workers=2)
    assert np.array_equal(threads, processes)
    mapped = np.lib.format.open_memmap(tmp_path / "cache.npy", mode="w+", dtype=np.uint8, shape=threads.shape)
    decode_all(source, items, 24, out=mapped, workers=2)  # the cache's file: workers write into it directly
    assert np.array_equal(threads, mapped)
    in_ram = np.zeros_like(threads)
    decode_all(source, items, 24, out=in_ram, workers=2)  # a plain array: filled from a scratch file
    assert np.array_equal(threads, in_ram)
    (root / "dog" / "3.jpg").write_bytes((root / "dog" / "5.jpg").read_bytes()[:200])  # truncated
    with pytest.raises(DataError, match=r"cannot decode .*dog/3\.jpg"):
        decode_all(source, items, 24, workers=2)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "workers"])
@pytest.mark.parametrize(("content", "words"), [(b"", "(an empty file, 0 bytes: not an image)"),
                                                 (b"<html>not a picture</html>", "(not an image Pillow can read")],
                         ids=["empty", "not-an-image"])
def test_a_file_that_is_no_image_is_named_in_plain_words(own, tmp_path, monkeypatch, processes, content, words):
    """Pillow says ``cannot identify image file <_io.BytesIO object at 0x7eff...>``: an object of
    ours, not the user's file. The message names the file and what is wrong with it instead."""
    root = write_photos(tmp_path / "photos", per_class=4)
    (root / "dog" / "bad.png").write_bytes(content)
    source = open_source(DataSpec(str(root)))
    items = [item for split in source.splits.values() for item, _ in split]
    if processes:
        monkeypatch.setattr(decode, "PROCESS_MIN_IMAGES", 2)
    with pytest.raises(DataError) as caught:
        decode_all(source, items, 24, workers=2)
    message = str(caught.value)
    assert f"cannot decode {root / 'dog' / 'bad.png'} {words}" in message, message
    assert "<_io." not in message and " at 0x" not in message, message
    result = own("finetune", "cifar_convnet_xs", "--data", str(root), "--epochs", "1")
    assert_clean_failure(result, 2, words)
    assert "<_io." not in result.output
    checked = own("data", "check", str(root), "--no-near", "--format", "json")
    assert checked.exit_code == 1 and "bad.png" in checked.stdout and "<_io." not in checked.stdout


def test_a_killed_decoding_worker_is_a_one_line_error_not_a_crash(tmp_path, monkeypatch):
    from harness.data import decode_workers

    root = write_photos(tmp_path / "photos", per_class=30)
    source = open_source(DataSpec(str(root)))
    items = [item for item, _ in source.splits["train"]]
    monkeypatch.setattr(decode, "PROCESS_MIN_IMAGES", 10)
    monkeypatch.setattr(decode, "CHUNK", 4)  # chunks enough for the worker to be sent some
    start = decode_workers._start

    def killed_at_once():  # a real worker, killed (as the OOM killer would) before it answers
        proc = start()
        proc.kill()
        proc.wait()
        return proc

    monkeypatch.setattr(decode_workers, "_start", killed_at_once)
    with pytest.raises(decode_workers.WorkerDied, match=r"exit code -9 \(killed: often for want of memory\)"
                       r".*HARNESS_THREADS=1") as found:
        decode_all(source, items, 24, workers=2)
    assert found.value.exit_code == 1 and "\n" not in str(found.value)


def test_off_a_terminal_decoding_logs_progress_lines(tmp_path, monkeypatch, capsys):
    from harness import progress

    root = write_photos(tmp_path / "photos", per_class=20)
    source = open_source(DataSpec(str(root)))
    items = [item for item, _ in source.splits["train"]]
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # a line per 10% instead of after 10 s as well
    decode_all(source, items, 24, workers=1)
    lines = capsys.readouterr().err.splitlines()  # pytest's stderr is not a terminal
    assert len(lines) >= 5, lines
    assert re.fullmatch(r"decoding 48 images at 24px: \d+/48 \(\d+%\), [\d,.]+ img/s, ~\d+ s left", lines[0])
    with progress.Progress(quiet=True).using():  # what load_split does with a --quiet context
        decode_all(source, items, 24, workers=1)
    assert capsys.readouterr().err == ""


def test_a_script_without_a_main_guard_decodes_in_workers_once(tmp_path):
    """Worker processes are not multiprocessing's: a user's script is not run again in each."""
    import subprocess
    import sys

    root = write_photos(tmp_path / "photos", per_class=20)
    script = tmp_path / "train_mine.py"
    script.write_text(f"""
from harness.data import decode
from harness.data.sources import DataSpec, open_source
print("script ran")
decode.PROCESS_MIN_IMAGES = 10
source = open_source(DataSpec({str(root)!r}))
items = [item for item, _ in source.splits["train"]]
print(decode.decode_all(source, items, 16, workers=2).shape)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["script ran", "(48, 3, 16, 16)"]


def test_the_imagefolder_plugin_decodes_like_a_data_folder(tmp_path):
    from plugins.imagefolder import load_imagefolder

    for split in ("train", "test"):
        folder = tmp_path / split / "cat"
        folder.mkdir(parents=True)
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(_upright()).transpose(Image.Transpose.ROTATE_90).save(folder / "phone.jpg", exif=exif,
                                                                              quality=95)
        Image.fromarray(_upright()).save(folder / "upright.jpg", quality=95)
    split = load_imagefolder("train", tmp_path, image_size=32).images.numpy().astype(int)
    assert np.abs(split[0] - split[1]).mean() < 2  # the phone photo is upright too
    assert split[0][1, 2, 2] > 150  # green top-left

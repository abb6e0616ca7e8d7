"""Boot images besides an ELF on -kernel: the multiboot ELF inside an ISO
(lhvdbg.state.iso, read with pycdlib) and a flat multiboot image (a.out kludge)."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pycdlib
import pytest

from lhvdbg.errors import KernelError
from lhvdbg.machine.launch import LaunchConfig, choose_kernel
from lhvdbg.state.elf import MULTIBOOT_MAGIC, find_lidt, inspect_kernel, is_flat_multiboot
from lhvdbg.state.iso import extract_iso_kernel, find_iso_kernel, prune_cache

AOUT_KLUDGE = 1 << 16
LOAD = 0x100000


def fake_elf(tag: bytes) -> bytes:
    """An ELF header's magic, then a plain multiboot header at offset 64: what the ISO
    reader looks for (it reads no further)."""
    header = struct.pack("<III", MULTIBOOT_MAGIC, 0, -MULTIBOOT_MAGIC & 0xFFFFFFFF)
    return b"\x7fELF" + bytes(60) + header + tag


def make_iso(path: Path, files: dict[str, bytes]) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(rock_ridge="1.09")
    made = set()
    for name, data in files.items():
        parts = name.strip("/").split("/")
        for depth in range(1, len(parts)):
            d = "/" + "/".join(parts[:depth])
            if d not in made:
                made.add(d)
                iso.add_directory(
                    iso_path=d.upper()[:8]
                    if depth == 1
                    else "/".join(p.upper()[:8] for p in d.split("/")),
                    rr_name=parts[depth - 1],
                )
        iso_path = "/".join(p.upper()[:8] for p in ["", *parts[:-1]])
        leaf = parts[-1].upper().replace("-", "_")
        stem, _, ext = leaf.partition(".")
        iso.add_fp(
            io.BytesIO(data), len(data), f"{iso_path}/{stem[:8]}.{ext[:3]};1", rr_name=parts[-1]
        )
    iso.write(str(path))
    iso.close()
    return path  # fmt: skip


def test_the_kernel_grub_loads(tmp_path: Path) -> None:
    cfg = b"set timeout=0\nmenuentry x {\n\tmultiboot (cd)/boot/mine.elf arg=1\n\tboot\n}\n"
    iso = make_iso(
        tmp_path / "a.iso",
        {"/boot/other.elf": fake_elf(b"other"), "/boot/mine.elf": fake_elf(b"mine"),
         "/boot/grub/grub.cfg": cfg},
    )  # fmt: skip
    found = find_iso_kernel(iso)
    assert found is not None and found.name == "/boot/mine.elf"
    assert found.how == "/boot/grub/grub.cfg loads it" and found.data.endswith(b"mine")
    cache = tmp_path / "cache"
    path, again = extract_iso_kernel(iso, cache) or (None, None)
    assert path is not None and path.read_bytes() == found.data
    assert path.parent == cache and cache.stat().st_mode & 0o777 == 0o700
    assert extract_iso_kernel(iso, cache) == (path, again)  # content-addressed: the same file


def test_the_cache_of_extracted_kernels_stays_small(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    now = 1_000_000_000.0
    day = 24 * 3600
    files = []
    for i in range(20):  # kernel-0 used 0 days ago ... kernel-19 used 19 hours ago
        f = cache / f"kernel-{i}"
        f.write_bytes(b"x")
        os.utime(f, (now - i * 3600, now - i * 3600))
        files.append(f)
    stale = cache / "stale"
    stale.write_bytes(b"x")
    os.utime(stale, (now - 8 * day, now - 8 * day))
    fresh_partial = cache / ".kernel-20.123"
    fresh_partial.write_bytes(b"x")
    os.utime(fresh_partial, (now - 60, now - 60))
    old_partial = cache / ".kernel-21.456"
    old_partial.write_bytes(b"x")
    os.utime(old_partial, (now - 7200, now - 7200))
    in_use = files[19]  # the oldest, but the one this session uses
    removed = set(prune_cache(cache, keep=in_use, now=now))
    assert removed == {*files[15:19], stale, old_partial}
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f.name for f in files[:15]] + [in_use.name, fresh_partial.name]
    )


def test_without_a_config_the_first_multiboot_elf(tmp_path: Path) -> None:
    iso = make_iso(
        tmp_path / "b.iso",
        {"/boot/grub/x.mod": fake_elf(b"module"), "/notes.txt": b"hello",
         "/kernel/k.elf": fake_elf(b"k")},
    )  # fmt: skip
    found = find_iso_kernel(iso)
    assert found is not None and found.name == "/kernel/k.elf"
    assert found.how == "the first multiboot ELF on the disc"


def test_no_kernel_and_not_an_iso(tmp_path: Path) -> None:
    assert find_iso_kernel(make_iso(tmp_path / "c.iso", {"/readme.txt": b"x"})) is None
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"not an iso" * 100)
    with pytest.raises(KernelError, match="not a readable ISO image"):
        find_iso_kernel(junk)


def flat_image(tmp_path: Path) -> Path:
    """A flat multiboot image: header with the a.out kludge at offset 0, `lidt [0x100100]`
    at the entry (0x100020), then hlt."""
    flags = AOUT_KLUDGE
    header = struct.pack(
        "<8I", MULTIBOOT_MAGIC, flags, -(MULTIBOOT_MAGIC + flags) & 0xFFFFFFFF,
        LOAD, LOAD, LOAD + 0x200, LOAD + 0x1000, LOAD + 0x20,
    )  # fmt: skip
    code = b"\x0f\x01\x1d" + struct.pack("<I", LOAD + 0x100) + b"\xf4"
    image = header + code + bytes(0x200 - len(header) - len(code))
    path = tmp_path / "flat.bin"
    path.write_bytes(image)
    return path


def test_a_flat_image_is_a_kernel(tmp_path: Path) -> None:
    flat = flat_image(tmp_path)
    assert is_flat_multiboot(flat)
    info = inspect_kernel(flat)
    assert (info.entry, info.elf_class, info.symbols) == (LOAD + 0x20, 32, {})
    (seg,) = info.segments
    assert (seg.vaddr, seg.filesz, seg.memsz, seg.executable) == (LOAD, 0x200, 0x1000, True)
    assert find_lidt(info) == [LOAD + 0x20]


def test_a_flat_image_needs_no_symbols(tmp_path: Path) -> None:
    flat = flat_image(tmp_path)
    choice = choose_kernel(LaunchConfig(kernel=flat, arch="i386"))
    assert choice.kernel == flat and choice.symbol_path is None and choice.arch == "i386"
    info = choice.read_info()
    assert info is not None and info.entry == LOAD + 0x20

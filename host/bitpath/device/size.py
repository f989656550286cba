"""Flash and RAM of a firmware ELF, read from its section headers and symbols (pyelftools).

Flash = every allocated section with a load image (vector table, code, read-only data, ARM unwind
index, and the initial values of .data). RAM = .data + .bss + the reserved stack; the firmware has no
heap. `largest` lists the biggest symbols so a size report says where the bytes go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

FORBIDDEN_SYMBOLS = ("malloc", "free", "calloc", "realloc", "_sbrk", "_malloc_r", "_free_r", "printf", "sprintf")


@dataclass(frozen=True)
class FirmwareSize:
    elf: Path
    flash: int
    ram: int
    stack: int
    sections: dict[str, int]
    largest: list[tuple[str, int, str]] = field(default_factory=list)  # (symbol, bytes, "flash"|"ram")
    forbidden: list[str] = field(default_factory=list)  # allocator/printf symbols linked in (should be none)
    vector_sp: int = 0
    vector_reset: int = 0
    reset_handler: int = 0
    flash_origin: int = 0


def measure(elf_path: Path | str, *, top: int = 8) -> FirmwareSize:
    """Sizes of one linked ELF. Raises ValueError if it lacks the bitpath sections."""
    path = Path(elf_path)
    with path.open("rb") as f:
        elf = ELFFile(f)
        sections: dict[str, int] = {}
        flash = ram = 0
        ram_ranges: list[tuple[int, int]] = []
        for s in elf.iter_sections():
            if not s["sh_flags"] & SH_FLAGS.SHF_ALLOC or s["sh_size"] == 0:
                continue
            sections[s.name] = s["sh_size"]
            if s["sh_type"] != "SHT_NOBITS":
                flash += s["sh_size"]  # .data's initial values live in flash too
            if s.name in (".data", ".bss", ".stack"):
                ram += s["sh_size"]
                ram_ranges.append((s["sh_addr"], s["sh_addr"] + s["sh_size"]))
        for required in (".isr_vector", ".text", ".stack"):
            if required not in sections:
                raise ValueError(f"{path}: no {required} section; not a bitpath firmware image")
        symtab = elf.get_section_by_name(".symtab")
        syms: dict[str, tuple[int, int]] = {}
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                if sym.name:
                    syms[sym.name] = (sym["st_value"], sym["st_size"])
        vec = elf.get_section_by_name(".isr_vector")
        data = vec.data()
        sp, reset = int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little")
        objects = []
        for name, (addr, size) in syms.items():
            if size >= 16:
                where = "ram" if any(lo <= addr < hi for lo, hi in ram_ranges) else "flash"
                objects.append((name, size, where))
        objects.sort(key=lambda t: -t[1])
        return FirmwareSize(
            elf=path,
            flash=flash,
            ram=ram,
            stack=sections[".stack"],
            sections=sections,
            largest=objects[:top],
            forbidden=sorted(n for n in FORBIDDEN_SYMBOLS if n in syms),
            vector_sp=sp,
            vector_reset=reset,
            reset_handler=syms.get("Reset_Handler", (0, 0))[0],
            flash_origin=vec["sh_addr"],
        )


def markdown_row(board: str, env: str, s: FirmwareSize) -> str:
    return (
        f"| {board} | `{env}` | {s.flash:,} | {s.ram:,} | {s.stack:,} | "
        f"{s.sections.get('.bss', 0):,} | {s.sections.get('.data', 0):,} |"
    )

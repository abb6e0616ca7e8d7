"""A model of the return with IRET/IRETD/IRETQ: the checks on the frame actually popped.

Intel SDM Vol. 2A "IRET/IRETD/IRETQ" pseudo-code (PROTECTED-MODE-RETURN,
RETURN-TO-OUTER-PRIVILEGE-LEVEL, IA-32e mode): the popped CS (null, outside the GDT, not
code, RPL < CPL, DPL rules, present), then SS when the architecture pops it (IRETQ, or a
return to an outer ring: a same-privilege 32-bit ``iret`` pops no ESP/SS), then the
return RIP (canonical in IA-32e, within CS's limit otherwise). Pure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from lhvdbg.x86.cpuview import (
    GP,
    NP,
    SS,
    CheckFailed,
    CheckResult,
    CheckRun,
    CpuView,
    Raised,
    is_canonical,
    sel_hex,
)
from lhvdbg.x86.segments import is_code, is_data, is_system, limit_bytes
from lhvdbg.x86.usable import descriptor_at

__all__ = ["IretFrame", "Return", "iret", "pop_frame"]


@dataclass(frozen=True)
class IretFrame:
    """What IRET popped: only the words the architecture pops (no SS/RSP for a
    same-privilege 32-bit ``iret``)."""

    rip: int
    cs: int
    rflags: int
    rsp: int | None = None
    ss: int | None = None
    width: int = 8

    def to_dict(self) -> dict[str, int]:
        """The popped fields by name (absent ones left out)."""
        out = {"rip": self.rip, "cs": self.cs, "rflags": self.rflags}
        if self.rsp is not None and self.ss is not None:
            out |= {"rsp": self.rsp, "ss": self.ss}
        return out


@dataclass(frozen=True)
class Return:
    """The model's account of an IRET: the frame popped and the checks run."""

    frame: IretFrame
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> CheckResult | None:
        """The first failing check."""
        return next((c for c in self.checks if c.ok is False), None)

    @property
    def raised(self) -> Raised | None:
        """What the failing check raises."""
        failed = self.failed
        return failed.raises if failed is not None else None


def pop_frame(view: CpuView, words: Sequence[int]) -> IretFrame:
    """Decode the words at the stack pointer as IRET pops them: IRETQ (IA-32e, 64-bit
    code) pops RIP, CS, RFLAGS, RSP, SS; a 32-bit IRET pops EIP, CS, EFLAGS and, only when
    returning to an outer privilege level (CS.RPL > CPL), ESP and SS."""
    if view.mode == "ia32e":
        rip, cs, flags, rsp, ss = (list(words) + [0] * 5)[:5]
        return IretFrame(rip, cs & 0xFFFF, flags, rsp, ss & 0xFFFF, 8)
    eip, cs, flags = (list(words) + [0] * 3)[:3]
    if cs & 3 > view.cpl and len(words) >= 5:
        return IretFrame(eip, cs & 0xFFFF, flags, words[3], words[4] & 0xFFFF, 4)
    return IretFrame(eip, cs & 0xFFFF, flags, width=4)


def iret(view: CpuView, frame: IretFrame) -> Return:
    """Run IRET's protected-mode / IA-32e checks on the popped ``frame`` (Vol. 2A IRET)."""
    run = CheckRun()
    with contextlib.suppress(CheckFailed):
        _iret_checks(run, view, frame)
    return Return(frame, tuple(run.checks))


def _iret_checks(run: CheckRun, view: CpuView, frame: IretFrame) -> None:
    cs = frame.cs
    gdt = view.tables.gdt
    state, desc = descriptor_at(gdt, cs)
    fields = {"iret_frame.cs": cs}
    if state == "null":
        run.fail(
            "iret-cs-null", "the popped CS is null", Raised(GP, 0), ("iret_frame.cs",), **fields
        )
    if state in ("ldt", "limit"):
        run.fail(
            "iret-cs-limit",
            f"the popped CS {sel_hex(cs)} lies outside the GDT",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    if desc is None:
        run.undecided("iret-cs-type", f"GDT[{sel_hex(cs)}] was not captured", **fields)
        return
    rpl = cs & 3
    v = desc.values
    if not is_code(desc):
        run.fail(
            "iret-cs-type",
            f"the popped CS {sel_hex(cs)} names "
            + ("a system descriptor" if is_system(desc) else "a data segment")
            + ", not code",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    if rpl < view.cpl:
        run.fail(
            "iret-cs-rpl",
            f"the popped CS {sel_hex(cs)} has RPL {rpl} < CPL {view.cpl}",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    conforming = bool(v["type"] & 0x4)
    if (conforming and v["dpl"] > rpl) or (not conforming and v["dpl"] != rpl):
        run.fail(
            "iret-cs-dpl",
            f"GDT[{sel_hex(cs)}] has DPL {v['dpl']}, the popped CS RPL is {rpl}",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    if not v["present"]:
        run.fail(
            "iret-cs-present",
            f"GDT[{sel_hex(cs)}] is not present",
            Raised(NP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    run.ok("iret-cs-present", f"CS {sel_hex(cs)} is a usable code segment", **fields)
    to_64 = view.mode == "ia32e" and v["l"] == 1
    if frame.ss is not None and (frame.width == 8 or rpl > view.cpl):
        _iret_ss(run, view, frame, rpl, to_64)
    if to_64 and not is_canonical(frame.rip):
        run.fail(
            "iret-rip",
            f"the popped RIP {frame.rip:#x} is not canonical",
            Raised(GP, 0),
            ("iret_frame.rip",),
            **{"iret_frame.rip": frame.rip},
        )
    if not to_64 and frame.rip > limit_bytes(desc):
        run.fail(
            "iret-rip",
            f"the popped EIP {frame.rip:#x} lies beyond CS's limit {limit_bytes(desc):#x}",
            Raised(GP, 0),
            ("iret_frame.rip",),
            **{"iret_frame.rip": frame.rip},
        )
    run.ok("iret-rip", f"returns to {frame.rip:#x}", **{"iret_frame.rip": frame.rip})


def _iret_ss(run: CheckRun, view: CpuView, frame: IretFrame, rpl: int, to_64: bool) -> None:
    ss = frame.ss if frame.ss is not None else 0
    fields = {"iret_frame.ss": ss}
    fix = ("iret_frame.ss",)
    state, desc = descriptor_at(view.tables.gdt, ss)
    if state == "null":
        if to_64 and rpl != 3:
            run.ok(
                "iret-ss-null", "a null SS is allowed returning to 64-bit code at CPL < 3", **fields
            )
            return
        run.fail("iret-ss-null", "the popped SS is null", Raised(GP, 0), fix, **fields)
    if ss & 3 != rpl:
        run.fail(
            "iret-ss-rpl",
            f"the popped SS {sel_hex(ss)} has RPL {ss & 3} ≠ the CS RPL {rpl}",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if state in ("ldt", "limit"):
        run.fail(
            "iret-ss-limit",
            f"the popped SS {sel_hex(ss)} lies outside the GDT",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if desc is None:
        run.undecided("iret-ss-type", f"GDT[{sel_hex(ss)}] was not captured", **fields)
        return
    v = desc.values
    if not is_data(desc) or not v["type"] & 0x2:
        kind = (
            "code"
            if is_code(desc)
            else ("a system descriptor" if is_system(desc) else "read-only data")
        )
        run.fail(
            "iret-ss-type",
            f"the popped SS {sel_hex(ss)} names {kind}, not a writable data segment",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if v["dpl"] != rpl:
        run.fail(
            "iret-ss-dpl",
            f"GDT[{sel_hex(ss)}] has DPL {v['dpl']} ≠ the CS RPL {rpl}",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if not v["present"]:
        run.fail(
            "iret-ss-present",
            f"GDT[{sel_hex(ss)}] is not present",
            Raised(SS, ss & 0xFFFC),
            fix,
            **fields,
        )
    run.ok("iret-ss-present", f"SS {sel_hex(ss)} is a usable stack segment", **fields)

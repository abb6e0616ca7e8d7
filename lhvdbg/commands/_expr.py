"""Addresses as expressions, the same in every command that takes one (``x``, ``xp``, ``pt``,
``break``, ``watch``, ``p``, ``info symbol``): numbers, symbols, ``$reg``, ``+``/``-``,
parentheses and ``*EXPR`` (the pointer at EXPR, read at the CPU mode's pointer size).

``$pc`` (and ``$ip``/``$eip``/``$rip``) is the linear address of the next instruction:
CS.base + IP in real mode, where gdb would show the bare offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lhvdbg.commands.registry import Context

if TYPE_CHECKING:
    from lhvdbg.state.target import Target
    from lhvdbg.x86.cpustate import CpuState
    from lhvdbg.x86.disasm import CodeMode


def registers_of(cpu: CpuState) -> dict[str, int]:
    """Register names an expression may use, with their values."""
    from lhvdbg.x86.disasm import code_mode

    regs = dict(cpu.gprs)
    pc = code_mode(cpu).linear(cpu.ip)
    regs.update(pc=pc, ip=pc, rip=pc, eip=pc, flags=cpu.flags, eflags=cpu.flags)
    regs.update(rflags=cpu.flags, cr0=cpu.cr0, cr2=cpu.cr2, cr3=cpu.cr3, cr4=cpu.cr4)
    regs["efer"] = cpu.efer
    for name, seg in cpu.segments.items():
        regs[name] = seg.selector
    return regs


def current_mode(target: Target) -> CodeMode:
    """The code mode of the target's CPU now."""
    from lhvdbg.x86.disasm import code_mode

    return code_mode(target.cpu())


def evaluate(ctx: Context, text: str, *, target: Target | None = None) -> int:
    """The value of the expression ``text`` on the context's target."""
    from lhvdbg.ui.examine import eval_address

    tgt = target or ctx.require_target()
    cache: dict[str, CpuState] = {}

    def cpu() -> CpuState:
        if "cpu" not in cache:
            cache["cpu"] = tgt.cpu()
        return cache["cpu"]

    def deref(address: int) -> int:
        from lhvdbg.x86.disasm import code_mode

        size = code_mode(cpu()).pointer_size
        return int.from_bytes(tgt.read_memory(address, size), "little")

    return eval_address(text, tgt.symbols(), lambda: registers_of(cpu()), deref)

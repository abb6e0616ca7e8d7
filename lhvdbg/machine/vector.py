"""Stop where the CPU enters the handler that IDT[v] gives, for any multiboot kernel.

The kernel's IDT is not known before it runs, and a stripped kernel has no symbols, so
the handler is found the way the CPU finds it: from IDTR and the gate.

1. Arming points. Every ``lidt`` in the kernel's executable PT_LOAD segments
   (``0F 01 /3``, memory operand; :func:`lhvdbg.state.elf.find_lidt`) gets a
   breakpoint. Under TCG a breakpoint at an address that is not an instruction start
   never fires (QEMU matches the PC, it does not patch memory), so false positives cost
   nothing. When the timer vector is wanted, the vector itself can change after
   ``lidt`` (the kernel remaps its PIC or programs its LAPIC timer later), which no
   breakpoint or watchpoint sees: the guest runs in 20 ms slices and the timer vector
   (``info pic``/``info lapic``) and its gate are read again at each stop, until a
   handler hit is confirmed as the timer's. So the cost is bounded on any kernel: one
   hardware breakpoint on the handler, never a breakpoint per ``sti`` byte (a 2.5 MB
   hypervisor has ~8,500 ``FB`` bytes), and it works under KVM. A small kernel (at most
   ``STI_ARMING_MAX`` ``FB`` bytes, TCG) also re-arms at each ``sti``, so one that
   remaps its PIC and takes all its ticks within one slice is not missed.
2. Arming. At a ``lidt`` hit the instruction is stepped; then IDTR comes from QMP
   ``info registers`` and the gate from one memory read. A present gate gets a hardware
   breakpoint on its target; under TCG a write watchpoint on the gate's bytes re-arms
   when the kernel fills or changes the gate after ``lidt``.
3. Counting. Each hit of the handler breakpoint counts; at ``count`` the run stops with
   ``reason="vector"``. For the timer, a hit counts only when the timer vector read at
   the hit is still the armed one (else it re-arms: e.g. IDT[8]'s handler armed while
   the PIC still had the BIOS base, hit by something else).

Under KVM (x86 has four debug registers; watchpoints never fire on this machine's
kvm-pvm; software breakpoints crash the guest) the ``lidt`` candidates get hardware
breakpoints when there are at most three of them; otherwise, and for gate changes after
``lidt``, the guest runs in 20 ms slices and is re-armed at each stop. A handler run
between two slices can be missed there; that is documented in ``docs/session.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from lhvdbg.errors import GdbError, MachineError
from lhvdbg.machine.runstate import RUNNABLE, RunstateMachine, require
from lhvdbg.machine.stops import StopEvent

if TYPE_CHECKING:
    from lhvdbg.machine.ports import RunPort
    from lhvdbg.state.target import Target
    from lhvdbg.x86.cpustate import LapicState, PicState

log = logging.getLogger(__name__)

LVT_MASKED = 1 << 16  # LVT mask bit (Intel SDM Vol. 3A §11.5.1, Figure 11-8)
LVT_VECTOR = 0xFF
KVM_SLICE = 0.02
STI_ARMING_MAX = 64  # sti sites that become arming points too (TCG); more: slices only


def timer_vector_of(pic: PicState | None, lapic: LapicState | None) -> int | None:
    """The vector timer ticks arrive on: the master PIC's ``irq_base`` (IRQ0) when IRQ0
    is unmasked; else the LAPIC LVT timer vector when the LAPIC is enabled, its timer
    unmasked and counting; else the PIC's ``irq_base``; None without a PIC."""
    if pic is not None and not pic.master.imr & 1:
        return pic.master.irq_base
    if (
        lapic is not None
        and lapic.enabled
        and not lapic.lvt_timer & LVT_MASKED
        and lapic.timer_initial
    ):
        return lapic.lvt_timer & LVT_VECTOR
    return pic.master.irq_base if pic is not None else None


class VectorRun:
    """One ``run_to_vector``/``run_to_timer`` call (its internal breakpoints included)."""

    def __init__(self, session: RunPort, *, fixed_vector: int | None) -> None:
        self.s = session
        self.fixed_vector = fixed_vector
        self.kvm = session.accel == "kvm"
        self.arm_points: set[int] = set()  # breakpoint numbers of lidt/sti candidates
        self.handler_bp: int | None = None
        self.handler_addr: int | None = None
        self.vector: int | None = fixed_vector
        self.watch_bp: int | None = None
        self.watch_addr: int | None = None
        self.polling = False
        self.lidt_bps: set[int] = set()  # the arming points that need a stepi first

    # --- arming -----------------------------------------------------------------------

    def _set_arm_points(self) -> None:
        from lhvdbg.state.elf import find_lidt, find_sti

        info = self.s.kernel_info
        if self.fixed_vector is None:
            self.polling = True  # the timer vector may change after lidt (see above)
        if info is None:
            self.polling = True
            return
        lidt = set(find_lidt(info))
        candidates = set(lidt)
        if self.fixed_vector is None and not self.kvm:
            sti = find_sti(info)
            if len(sti) <= STI_ARMING_MAX:
                candidates.update(sti)
        if self.kvm and len(candidates) > 3:
            self.polling = True
            self.s.notes.append(
                f"KVM: {len(candidates)} arming points exceed the debug registers; "
                "re-arming in 20 ms slices instead (a handler run may be missed)"
            )
            return
        if self.kvm:
            self.polling = True  # gates written after lidt: no watchpoints under KVM
            note = (
                "KVM: hardware breakpoints on lidt and on the handler; gate changes are "
                "caught by re-arming every 20 ms (no watchpoints under KVM)"
            )
            if note not in self.s.notes:
                self.s.notes.append(note)
        for addr in sorted(candidates):
            number = self.s.break_at(addr, hardware=self.kvm, internal=True)
            self.arm_points.add(number)
            if addr in lidt:
                self.lidt_bps.add(number)

    def arm(self) -> None:
        """Read IDTR and the gate; (re)place the handler breakpoint and the watchpoint."""
        from lhvdbg.x86.segments import TYPE_TASK_GATE, gate_layout, gate_size

        cpu = self.s.target.cpu()
        if cpu.mode in ("real", "vm86"):
            return
        if self.fixed_vector is None:
            self.vector = self.s.timer_vector()
        vector = self.vector
        if vector is None:
            return
        size = gate_size(cpu.mode)
        if cpu.idtr.limit < vector * size + size - 1:
            return  # the gate is outside the IDT (not loaded yet)
        gate_addr = cpu.idtr.base + vector * size
        if not self.kvm and gate_addr != self.watch_addr:
            if self.watch_bp is not None:
                self._delete(self.watch_bp)
                self.watch_bp = None
            try:
                self.watch_bp = self.s.watch(gate_addr, size, internal=True)
                self.watch_addr = gate_addr
            except (GdbError, MachineError) as exc:  # e.g. IDT not mapped yet
                log.debug("no watchpoint on gate at %#x: %s", gate_addr, exc)
        try:
            raw = self.s.read_memory(gate_addr, size)
        except GdbError as exc:
            log.debug("gate at %#x unreadable: %s", gate_addr, exc)
            return
        gate = gate_layout(cpu.mode).decode(raw)
        if not gate.values.get("present"):
            return
        if cpu.mode == "protected" and gate.values["type"] == TYPE_TASK_GATE:
            task_target = self._task_entry(cpu.gdtr.base, cpu.gdtr.limit, gate.values["selector"])
            if task_target is None:
                return
            target = task_target
        else:
            target = gate.values["offset"]
            cs = cpu.segments["cs"]
            if cpu.mode == "protected" and gate.values.get("selector") == cs.selector:
                target += cs.base  # legacy gates are offsets into the handler's segment
        if target == self.handler_addr and self.handler_bp is not None:
            return
        if self.handler_bp is not None:
            self._delete(self.handler_bp)
        self.handler_bp = self.s.break_at(target, hardware=True, internal=True)
        self.handler_addr = target
        log.debug("armed vector %#x: handler %s", vector, self.s.symbolize(target))

    def _task_entry(self, gdt_base: int, gdt_limit: int, selector: int) -> int | None:
        """Where a task gate's task starts: the EIP saved in the TSS its selector names
        (Intel SDM Vol. 3A §7.2.1, §7.3: the switch loads EIP from the new TSS)."""
        from lhvdbg.x86.segments import system_descriptor_layout
        from lhvdbg.x86.tss import tss32_layout

        index = selector & 0xFFF8
        if index + 7 > gdt_limit:
            return None
        try:
            desc = system_descriptor_layout("legacy").decode(
                self.s.read_memory(gdt_base + index, 8)
            )
            eip = tss32_layout().field("eip")
            offset = eip.pieces[0][0] // 8
            raw = self.s.read_memory(desc.values["base"] + offset, 4)
        except (GdbError, MachineError) as exc:
            log.debug("task gate's TSS at selector %#x unreadable: %s", selector, exc)
            return None
        return int.from_bytes(raw, "little")

    def _delete(self, number: int) -> None:
        try:
            self.s.delete(number)
        except (GdbError, MachineError) as exc:
            log.debug("delete %d: %s", number, exc)

    def _cleanup(self) -> None:
        if not self.s.alive:
            return
        for number in [*self.arm_points, self.handler_bp, self.watch_bp]:
            if number is not None and number in self.s.breakpoint_numbers():
                self._delete(number)

    # --- the run ----------------------------------------------------------------------

    def run(
        self, *, count: int, timeout: float, poll: Callable[[], None] | None = None
    ) -> StopEvent:
        """Run until the handler was entered ``count`` times (see module docstring);
        ``poll`` is handed to each ``cont``."""
        if count < 1:
            raise ValueError("count must be at least 1")
        started = time.monotonic()
        deadline = started + timeout
        hits = 0
        try:
            self._set_arm_points()
            self.arm()
            if self.handler_addr is not None and self._at(self.handler_addr):
                # Stopped at the handler's entry by the last run: step off it first, so the
                # breakpoint just placed there cannot report the same entry again.
                stuck = self._step_off(started)
                if stuck is not None:
                    return stuck
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._timeout(started, timeout, hits, count)
                slice_ = min(remaining, KVM_SLICE) if self.polling else remaining
                event = self.s.cont(timeout=slice_, poll=poll)
                elapsed = time.monotonic() - started
                if event.reason == "timeout":
                    if time.monotonic() >= deadline:
                        detail = self._timed_out(timeout, hits, count)
                        return replace(event, elapsed=elapsed, detail=detail)
                    self.arm()  # polling slice ended
                    if event.address is not None and event.address == self.handler_addr:
                        # The slice ended on the handler's entry (delivered, not yet run).
                        # Continuing from there is gdb's step over the breakpoint, which
                        # the next slice's interrupt cut short again and again under load
                        # (the guest never moved): step off it first.
                        stuck = self._step_off(started)
                        if stuck is not None:
                            return stuck
                    continue
                if event.reason != "breakpoint":
                    return replace(event, elapsed=elapsed)
                bp = event.breakpoint
                if bp is not None and bp in self.arm_points:
                    if bp in self.lidt_bps:
                        stuck = self._step_off(started)
                        if stuck is not None:
                            return stuck
                    self.arm()
                    continue
                if bp is not None and bp == self.watch_bp:
                    self.arm()
                    continue
                if bp is not None and bp == self.handler_bp:
                    if self.fixed_vector is None and not self._timer_confirmed():
                        self.arm()  # the timer moved to another vector: not its tick
                        continue
                    hits += 1
                    if hits >= count:
                        return self._vector_event(event, hits, elapsed)
                    # not by gdb's step over the breakpoint: QEMU (7.2 with a watchpoint
                    # in the page the first instruction writes, 10 too) can report that
                    # step as the same breakpoint again, one entry counted twice
                    stuck = self._step_off(started)
                    if stuck is not None:
                        return stuck
                    continue
                return replace(event, elapsed=elapsed)  # the user's own breakpoint
        finally:
            self._cleanup()

    def _step_off(self, started: float) -> StopEvent | None:
        """Execute the instruction at the PC (a ``lidt`` arming point, the handler's
        entry) by ``stepi``; the stop to return when that did not end as a step (the
        guest exited, shut down...), else None. A step QEMU reports as the breakpoint at
        the PC again (seen under load on 7.2 and 10) is taken again by ``stepi`` itself;
        one that ends on another breakpoint has run its instruction."""
        step = self.s.stepi()
        if step.reason not in ("step", "breakpoint"):
            return replace(step, elapsed=time.monotonic() - started)
        return None

    def _at(self, address: int) -> bool:
        """Whether the guest sits at ``address`` now (False when it cannot be read)."""
        try:
            return self.s.pc() == address
        except (GdbError, MachineError):
            return False

    def _timer_confirmed(self) -> bool:
        """At a handler hit: whether the timer vector is still the armed one. Once it is,
        the vector is settled and the slices stop (under TCG; KVM keeps them for gate
        changes)."""
        if self.s.timer_vector() != self.vector:
            return False
        if not self.kvm:
            self.polling = False
        return True

    def _vector_text(self) -> str:
        return "timer" if self.vector is None else f"{self.vector:#x}"

    def _vector_event(self, event: StopEvent, hits: int, elapsed: float) -> StopEvent:
        assert self.vector is not None
        handler = self.s.symbolize(event.address) if event.address is not None else "?"
        what = "timer tick" if self.fixed_vector is None else "entry"
        return replace(
            event,
            reason="vector",
            vector=self.vector,
            elapsed=elapsed,
            detail=f"vector {self.vector:#x} handler {handler} reached ({what} {hits})",
        )

    def _timeout(self, started: float, timeout: float, hits: int, count: int) -> StopEvent:
        """The time ran out between two stops (the guest is stopped)."""
        pc = self.s.pc() if self.s.alive else None
        detail = self._timed_out(timeout, hits, count)
        return StopEvent("timeout", pc, detail=detail, elapsed=time.monotonic() - started)

    def _timed_out(self, timeout: float, hits: int, count: int) -> str:
        """A timed-out run's detail: one wording, whether the time ran out while the guest
        ran or between two of its stops (a docs example met both)."""
        return (
            f"timeout after {timeout:g} s: vector {self._vector_text()} handler "
            f"entered {hits} of {count} times"
        )


class SessionVectorRuns(RunstateMachine):
    """The ``run_to_vector``/``run_to_timer`` half of
    :class:`~lhvdbg.machine.session.Session` (a base class; the session supplies the
    hooks below and is the :class:`~lhvdbg.machine.ports.RunPort` a run drives)."""

    target: Target

    def _not_runnable(self) -> StopEvent | None:
        raise NotImplementedError

    def _record_stop(self, event: StopEvent) -> StopEvent:
        raise NotImplementedError

    @require(*RUNNABLE)
    def run_to_vector(
        self,
        vector: int,
        *,
        count: int = 1,
        timeout: float,
        poll: Callable[[], None] | None = None,
    ) -> StopEvent:
        """Run until the CPU has entered the handler IDT[``vector``] points to ``count``
        times, for any multiboot kernel (stripped too); see the module docstring.
        Returns ``reason="vector"`` at the handler's first instruction, or
        ``timeout``/``exited``/``shutdown``; another breakpoint of the user's returns
        its ``breakpoint`` event. ``poll``: as for ``Session.cont`` (an exception it
        raises leaves the guest running; ``interrupt()`` stops it)."""
        return self._vector_run(vector, count, timeout, poll)

    @require(*RUNNABLE)
    def run_to_timer(
        self, *, count: int = 1, timeout: float, poll: Callable[[], None] | None = None
    ) -> StopEvent:
        """Like :meth:`run_to_vector` for the timer vector, re-evaluated (PIC ``irq_base``
        for IRQ0, else the LAPIC LVT timer) at each arming point: ``lidt``, ``sti`` and
        gate writes. ``count`` is the number of timer ticks handled."""
        return self._vector_run(None, count, timeout, poll)

    def _vector_run(
        self, vector: int | None, count: int, timeout: float, poll: Callable[[], None] | None
    ) -> StopEvent:
        done = self._not_runnable()
        if done is not None:
            return done
        run = VectorRun(cast("RunPort", self), fixed_vector=vector)  # a Session is one
        return self._record_stop(run.run(count=count, timeout=timeout, poll=poll))

    def timer_vector(self) -> int | None:
        """The vector timer interrupts arrive on now (:func:`timer_vector_of`); None
        without PIC state."""
        return timer_vector_of(self.target.pic(), self.target.lapic())

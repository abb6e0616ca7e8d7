"""Reading histories (:mod:`lhvdbg.state.history`): what the kernel did to the PIC, as
evidence for the diagnosis, and where two runs diverge (``lhvdbg compare``). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lhvdbg.state.history import History, HistoryEvent

BIOS_MASTER_BASE = 0x08


def master_base(history: History) -> int | None:
    """The master PIC's vector base the kernel programmed (last ICW2), or None."""
    icw2 = history.named("ICW2", chip="master")
    return icw2[-1].facts.get("base") if icw2 else None


def pic_story(history: History) -> str:
    """What the kernel did to the master PIC's vector base, in one line."""
    icw1 = history.named("ICW1", chip="master")
    if not icw1:
        return (
            f"ICW1 was never written: the PIC kept the BIOS base {BIOS_MASTER_BASE:#04x} "
            f"(no 8259 initialisation from the kernel's entry on)"
        )
    icw2 = history.named("ICW2", chip="master")
    if not icw2:
        return "the kernel wrote ICW1 but no ICW2 followed: the initialisation never finished"
    last = icw2[-1]
    where = f"at {last.symbol}" if last.symbol else "by the kernel"
    return f"ICW2 {last.facts.get('base', 0):#04x} written {where}"


def first_hardware_interrupt(history: History, after: int = 0) -> HistoryEvent | None:
    """The kernel's first hardware interrupt with ``seq`` > ``after``."""
    for event in history.kernel_events():
        if event.seq > after and event.kind == "interrupt" and event.name == "irq":
            return event
    return None


# --- comparing two runs -----------------------------------------------------------------

_QUIET_NAMES = frozenset({"OCW2", "OCW3", "LAPIC EOI", "debug exit", "KBC data"})


@dataclass(frozen=True)
class Difference:
    """One place two histories differ: ``kind`` is ``missing`` (the good run did it,
    this one never did), ``extra`` (only this run did it) or ``changed`` (both, with
    other values); ``good``/``bad`` the events; ``matters`` whether it changes how
    interrupts are delivered; ``explanation`` one line."""

    kind: str
    good: tuple[HistoryEvent, ...]
    bad: tuple[HistoryEvent, ...]
    matters: bool
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "kind": self.kind,
            "matters": self.matters,
            "explanation": self.explanation,
            "good": [e.to_dict() for e in self.good],
            "bad": [e.to_dict() for e in self.bad],
        }


@dataclass(frozen=True)
class Comparison:
    """Where a run diverges from a good one: the first difference that matters most
    (first in ``differences``; None when nothing matters), then the others in order."""

    good: History
    bad: History
    differences: tuple[Difference, ...]

    @property
    def first_divergence(self) -> Difference | None:
        """The difference that matters most, earliest first (listed first)."""
        first = self.differences[0] if self.differences else None
        return first if first is not None and first.matters else None

    def to_dict(self) -> dict[str, Any]:
        """``{first_divergence: {good, bad, kind, explanation}, differences: [...]}``."""
        first = self.first_divergence
        return {
            "good": {k: v for k, v in self.good.to_dict().items() if k != "events"},
            "bad": {k: v for k, v in self.bad.to_dict().items() if k != "events"},
            "first_divergence": None if first is None else first.to_dict(),
            "differences": [d.to_dict() for d in self.differences],
        }


def milestone_key(event: HistoryEvent) -> tuple[object, ...]:
    """What makes two events "the same step" in two runs (addresses and values that
    differ between builds of one kernel, like RIPs, are left out; an instruction that
    can run in many places, ``sti``/``cli``, is keyed by its function)."""
    if event.kind == "port":
        return ("port", event.name, event.port, event.value)
    if event.kind in ("lapic", "ioapic"):
        return (event.kind, event.name, event.value)
    if event.kind == "insn":
        if event.insn in ("sti", "cli"):
            return ("insn", event.insn, event.function)
        if event.insn in ("lgdt", "lidt"):
            return ("insn", event.insn, event.facts.get("limit"))
        return ("insn", event.name, event.value)
    return (event.kind, event.name, event.value)


def milestones(history: History) -> list[HistoryEvent]:
    """The kernel's events that happen for the first time (a timer tick, an EOI, a
    ``cli`` in a print routine count once), in order."""
    seen: set[tuple[object, ...]] = set()
    out: list[HistoryEvent] = []
    for event in history.kernel_events():
        key = milestone_key(event)
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


_DELIVERY_PORT_NAMES = ("ICW", "OCW1", "PIT", "reset")


def weight(event: HistoryEvent) -> int:
    """How much a difference in this step matters: 2 when it changes how interrupts
    are delivered (PIC, PIT, LAPIC, I/O APIC programming, ``lidt``, the vectors that
    arrived), 1 when it is latent (``ltr``, ``wrmsr``, ``mov cr0/cr4``, ``sti``: state
    the CPU reads later), 0 when it is noise or an outcome (``cli`` in a print routine,
    EOIs, ``lgdt`` of another length, CR3 reloads, the exit code)."""
    if event.name in _QUIET_NAMES:
        return 0
    if event.kind == "port":
        return 2 if event.name.startswith(_DELIVERY_PORT_NAMES) else 0
    if event.kind in ("lapic", "ioapic", "interrupt", "fault"):
        return 2
    if event.insn == "lidt":
        return 2
    if event.insn in ("ltr", "wrmsr", "sti", "mov cr0", "mov cr4"):
        return 1
    return 0


def _where(event: HistoryEvent) -> str:
    fn = event.function
    return f" in {fn}" if fn and event.kind != "interrupt" else ""


def _pic_words(events: tuple[HistoryEvent, ...]) -> str | None:
    """``ICW1–ICW4 (base 0x20)`` when ``events`` hold the master's initialisation."""
    names = sorted({e.name for e in events if e.name.startswith("ICW")})
    if not names:
        return None
    base = next((e.facts["base"] for e in events if e.name == "ICW2" and "base" in e.facts), None)
    span = names[0] if len(names) == 1 else f"{names[0]}–{names[-1]}"
    return span + (f" (base {base:#04x})" if base is not None else "")


def _irq_text(history: History, event: HistoryEvent) -> str:
    vector = event.value or 0
    base = master_base(history)
    base = BIOS_MASTER_BASE if base is None else base
    if base <= vector < base + 8:
        return f"IRQ{vector - base} arrived on {vector:#04x}"
    return f"an interrupt arrived on {vector:#04x}"


def _did(event: HistoryEvent) -> str:
    """What a run did, as a verb phrase: ``ran ltr (TR = ...)``, ``wrote master ICW2:
    vector base 0x20``, ``took hardware interrupt on vector 0x22: ...``."""
    if event.kind == "insn":
        return f"ran {event.insn} ({event.decoded})"
    if event.kind in ("interrupt", "fault"):
        return f"took {event.decoded}" if event.kind == "interrupt" else f"hit a {event.decoded}"
    return f"wrote {event.decoded}"


def _explain(kind: str, good: tuple[HistoryEvent, ...], bad: tuple[HistoryEvent, ...]) -> str:
    g, b = (good[0] if good else None), (bad[0] if bad else None)
    pic = _pic_words(good) if kind == "missing" else None
    if pic is not None and g is not None:
        return f"the good build wrote {pic}{_where(g)}; this build never did"
    if kind == "missing" and g is not None:
        return f"the good build {_did(g)}{_where(g)}; this build never did"
    if kind == "extra" and b is not None:
        return f"this build {_did(b)}{_where(b)}; the good build never did"
    assert g is not None and b is not None
    return f"the good build {_did(g)}{_where(g)}; this build {_did(b)}{_where(b)}"


def _then(bad: History, after: HistoryEvent | None, good: History) -> str:
    """What followed in the bad run: its first hardware interrupt after ``after``."""
    irq = first_hardware_interrupt(bad, after.seq if after is not None else 0)
    if irq is None:
        return ""
    first_good = first_hardware_interrupt(good)
    if first_good is not None and first_good.value == irq.value:
        return ""  # the same interrupt as in the good run: nothing followed from it
    text = _irq_text(bad, irq)
    if first_good is not None:
        text += f" (in the good build: {first_good.value or 0:#04x})"
    return f"; then {text}"


def compare_histories(good: History, bad: History) -> Comparison:
    """Align the first occurrences of each step in both runs and list the differences;
    the first one that matters explains itself with what followed in the bad run."""
    import difflib

    a, b = milestones(good), milestones(bad)
    matcher = difflib.SequenceMatcher(
        None, [milestone_key(e) for e in a], [milestone_key(e) for e in b], autojunk=False
    )
    found: list[tuple[str, tuple[HistoryEvent, ...], tuple[HistoryEvent, ...], int]] = []
    anchors: list[HistoryEvent | None] = []
    when: list[tuple[int, float, int]] = []  # roughly when each difference happened
    reader = tss_reader(bad)
    for block, (op, i1, i2, j1, j2) in enumerate(matcher.get_opcodes()):
        if op == "equal":
            continue
        kind = {"delete": "missing", "insert": "extra", "replace": "changed"}[op]
        ga, ba = tuple(a[i1:i2]), tuple(b[j1:j2])
        groups = _split(ga, ba) if op == "replace" else [(kind, ga, ba)]
        for k, gg, bb in (part for group in groups for part in _by_topic(*group)):
            w = max(weight(e) for e in (*gg, *bb))
            if _about_ltr((*gg, *bb)) and reader is not None:
                w = 2  # latent no more: this run went where the CPU reads the TSS
            found.append((k, gg, bb, w))
            anchors.append(bb[-1] if bb else (b[j1 - 1] if j1 > 0 else None))
            # within a replaced block: by the share of the good run's steps before it (of
            # this run's, for what only this run did); at a tie what this run did instead
            # comes before what it then never did
            share = ga.index(gg[0]) / len(ga) if gg else ba.index(bb[0]) / len(ba)
            when.append((block, share, 0 if bb else 1))
    top = max((w for *_, w in found), default=0)
    tops = [n for n, item in enumerate(found) if item[3] == top]
    first = min(tops, key=lambda n: when[n]) if top else None
    diffs: list[Difference] = []
    for n, (k, gg, bb, w) in enumerate(found):
        text = _explain(k, gg, bb)
        if n == first:
            text += _latent(gg, bb, reader) + _then(bad, anchors[n], good)
            if all(e.kind in ("interrupt", "fault") for e in (*gg, *bb)):
                text += (
                    "; nothing the kernel programmed differs before it: the cause is in "
                    "memory a history does not record (the IDT's gates, the TSS: see "
                    "break-on-df, diff-tss)"
                )
        diffs.append(Difference(k, gg, bb, w > 0, text))
    if first is not None:  # the first divergence that matters comes first
        diffs.insert(0, diffs.pop(first))
    return Comparison(good, bad, tuple(diffs))


def tss_reader(run: History) -> HistoryEvent | None:
    """The run's first event that may have made the CPU read the TSS (an exception, a
    fault, an interrupt taken in ring 3: an IST or RSP0 stack), or None. A history does
    not hold the gates, so an exception counts whatever its gate's IST."""
    return next(
        (
            e
            for e in run.kernel_events()
            if e.kind == "fault" or e.name == "exception" or e.facts.get("cpl", 0) == 3
        ),
        None,
    )


def _about_ltr(events: tuple[HistoryEvent, ...]) -> bool:
    return any(e.insn == "ltr" for e in events)


def _latent(
    good: tuple[HistoryEvent, ...], bad: tuple[HistoryEvent, ...], reader: HistoryEvent | None
) -> str:
    """For a missing ``ltr``: whether the run ever needed the TSS (``reader``, its first
    event that may have read it: :func:`tss_reader`), and where."""
    if not _about_ltr((*good, *bad)):
        return ""
    if reader is not None:
        return f"; then this run took {reader.decoded}" + _where(reader)
    return (
        " (the CPU reads the TSS only on a privilege change, an IST stack or a task"
        " switch; this run had no exception and no interrupt from ring 3)"
    )


def _by_topic(
    kind: str, good: tuple[HistoryEvent, ...], bad: tuple[HistoryEvent, ...]
) -> list[tuple[str, tuple[HistoryEvent, ...], tuple[HistoryEvent, ...]]]:
    """A block of missing (or extra) steps cut where the function or the weight changes,
    so ``ltr`` in tss_load and the ICWs in pic_init are two differences."""
    if kind == "changed":
        return [(kind, good, bad)]
    events = good or bad
    parts: list[list[HistoryEvent]] = []
    for event in events:
        topic = (event.function, weight(event))
        if parts and (parts[-1][0].function, weight(parts[-1][0])) == topic:
            parts[-1].append(event)
        else:
            parts.append([event])
    if good:
        return [(kind, tuple(p), ()) for p in parts]
    return [(kind, (), tuple(p)) for p in parts]


def _split(
    good: tuple[HistoryEvent, ...], bad: tuple[HistoryEvent, ...]
) -> list[tuple[str, tuple[HistoryEvent, ...], tuple[HistoryEvent, ...]]]:
    """A replaced block as pairs of the same kind of step (``changed``), the rest as
    ``missing``/``extra``."""
    out: list[tuple[str, tuple[HistoryEvent, ...], tuple[HistoryEvent, ...]]] = []
    rest = list(bad)
    for g in good:
        twin = next((x for x in rest if milestone_key(x)[:2] == milestone_key(g)[:2]), None)
        if twin is not None:
            rest.remove(twin)
            out.append(("changed", (g,), (twin,)))
        else:
            out.append(("missing", (g,), ()))
    out += [("extra", (), (x,)) for x in rest]
    merged: list[tuple[str, tuple[HistoryEvent, ...], tuple[HistoryEvent, ...]]] = []
    for kind, g_events, b_events in out:
        if merged and kind != "changed" and merged[-1][0] == kind:
            last = merged[-1]
            merged[-1] = (kind, last[1] + g_events, last[2] + b_events)
        else:
            merged.append((kind, g_events, b_events))
    return merged

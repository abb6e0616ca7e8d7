"""JUnit XML for CI: one ``<testcase>`` per scenario, failures with expected and actual."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from lhvdbg.errors import UsageError
from lhvdbg.scenario.runner import ScenarioResult

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (a console may print any)."""
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(results: Sequence[ScenarioResult], *, suite: str = "lhvdbg scenarios") -> str:
    """The JUnit XML text of ``results`` (the schema Jenkins/GitLab/GitHub read)."""
    failures = sum(r.status == "fail" for r in results)
    errors = sum(r.status == "error" for r in results)
    total = sum(r.elapsed for r in results)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{total:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            root,
            "testcase",
            classname=f"scenarios.{Path(r.file).parent.name or 'python'}",
            name=r.label,
            file=r.file,
            time=f"{r.elapsed:.3f}",
        )
        if r.allow_host:  # first, as the JUnit schema orders a testcase's children
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="allow-host", value="true")
            for use in r.host_access:
                ET.SubElement(properties, "property", name="host-access", value=_clean(use))
        if r.status != "pass":
            tag = "failure" if r.status == "fail" else "error"
            element = ET.SubElement(
                case, tag, message=_clean(r.failures[0] if r.failures else r.status)
            )
            element.text = _clean("\n".join([*r.failures, f"at {r.where}" if r.where else ""]))
        if r.log:
            ET.SubElement(case, "system-out").text = _clean(r.log)
        if r.serial:
            ET.SubElement(case, "system-err").text = _clean("serial console:\n" + r.serial)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(results: Sequence[ScenarioResult], path: Path | str) -> None:
    """Write :func:`junit_xml` to ``path`` (UsageError if it cannot be written)."""
    try:
        Path(path).write_text(junit_xml(results), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc

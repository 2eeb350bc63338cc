"""Scaffolding of the handbook BPMN files: generates a first version of each process.

The committed .bpmn files are the source of truth, edited by designers in the browser modeller
afterwards; `scaffold` therefore never overwrites an existing file.

    scaffold("bpmn/scenario_gas.bpmn", "scenario_gas")          # FileExistsError if present
    scaffold_missing(Path("."))                                  # every file not yet on disk
    render("common_accept")                                      # the XML as bytes
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .model import Definitions
from .publication import warning_publication
from .scenario import SCENARIOS, scenario_definitions
from .shared import SHARED
from .writer import render_definitions

__all__ = ["PROCESS_FILES", "SCENARIOS", "render", "scaffold", "scaffold_missing"]


Builder = Callable[[Mapping[str, Any] | None], Definitions]


def _shared(build: Callable[[], Definitions]) -> Builder:
    return lambda _handbook: build()


def _scenario(code: str) -> Builder:
    return lambda handbook: scenario_definitions(code, handbook)


BUILDERS: dict[str, Builder] = {
    **{key: _shared(build) for key, build in SHARED.items()},
    "warning_publication": _shared(warning_publication),
    **{f"scenario_{code}": _scenario(code) for code in SCENARIOS},
}

# process id -> path of its file, relative to the project root
PROCESS_FILES: dict[str, str] = {
    **{key: f"bpmn/shared/{key}.bpmn" for key in SHARED},
    "warning_publication": "bpmn/warning_publication.bpmn",
    **{f"scenario_{code}": f"bpmn/scenario_{code}.bpmn" for code in SCENARIOS},
}


def render(process_id: str, handbook: Mapping[str, Any] | None = None) -> bytes:
    """The generated BPMN file of `process_id`; a scenario may take its handbook data
    (`special_steps`) from `handbook`."""
    try:
        build = BUILDERS[process_id]
    except KeyError:
        raise ValueError(f"no scaffold for process {process_id!r}; known: "
                         + ", ".join(sorted(BUILDERS))) from None
    return render_definitions(build(handbook))


def scaffold(path: str | Path, process_id: str,
             handbook: Mapping[str, Any] | None = None) -> Path:
    """Write the generated file for `process_id` to `path`; refuse if the file exists."""
    target = Path(path)
    content = render(process_id, handbook)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("xb") as handle:    # "x": FileExistsError instead of overwriting
        handle.write(content)
    return target


def scaffold_missing(root: Path, handbooks: Mapping[str, Mapping[str, Any]] | None = None
                     ) -> list[Path]:
    """Write every process file that does not exist under `root` yet; return what was written."""
    written = []
    for process_id, relative in PROCESS_FILES.items():
        target = root / relative
        if target.exists():
            continue
        data = None
        if handbooks and process_id.startswith("scenario_"):
            data = handbooks.get(process_id.removeprefix("scenario_"))
        written.append(scaffold(target, process_id, data))
    return written

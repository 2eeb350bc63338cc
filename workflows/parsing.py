"""SpiffWorkflow's Camunda parser, subclassed to accept ISO 8601 timer literals.

One `HandbookParser` is created per version (the engine refuses the same process id twice in one
parser), fed the already hardened and checked lxml trees, and asked for every executable process
and the processes it calls. Engine validation errors become `Problem`s with file, element id and
source line.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import (
    CamundaBoundaryEventParser,
    CamundaIntermediateCatchEventParser,
    CamundaIntermediateThrowEventParser,
    CamundaStartEventParser,
)

from .documents import BpmnDocument
from .errors import Problem
from .timers import engine_expression


class _QuotesIsoTimers:
    """Mixin for event parsers: hand the engine `'PT30M'` where the modeller wrote `PT30M`."""

    def parse_timer_event(self, event: Any) -> Any:
        definition = super().parse_timer_event(event)  # type: ignore[misc]
        definition.expression = engine_expression(definition.expression)
        return definition


class StartEventParser(_QuotesIsoTimers, CamundaStartEventParser):
    pass


class IntermediateCatchEventParser(_QuotesIsoTimers, CamundaIntermediateCatchEventParser):
    pass


class IntermediateThrowEventParser(_QuotesIsoTimers, CamundaIntermediateThrowEventParser):
    pass


class BoundaryEventParser(_QuotesIsoTimers, CamundaBoundaryEventParser):
    pass


class HandbookParser(CamundaParser):
    """CamundaParser that quotes bare ISO 8601 timer values."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("startEvent"): (StartEventParser, StartEvent),
        full_tag("intermediateCatchEvent"): (IntermediateCatchEventParser, IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (IntermediateThrowEventParser, IntermediateThrowEvent),
        full_tag("boundaryEvent"): (BoundaryEventParser, BoundaryEvent),
    }


def build_specs(
    documents: list[BpmnDocument],
) -> tuple[dict[str, BpmnProcessSpec], dict[str, dict[str, BpmnProcessSpec]], list[Problem]]:
    """Parse all documents with one parser; return process specs and each one's dependencies."""
    by_name = {doc.name: doc for doc in documents}
    parser = HandbookParser()
    specs: dict[str, BpmnProcessSpec] = {}
    dependencies: dict[str, dict[str, BpmnProcessSpec]] = {}
    try:
        for doc in documents:
            parser.add_bpmn_xml(doc.root, filename=doc.name)
        for process_id in parser.get_process_ids():
            specs[process_id] = parser.get_spec(process_id)
            dependencies[process_id] = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        source = by_name.get(exc.file_name)
        element_id = exc.id or None
        line = source.line_of(element_id) if source is not None else None
        message = str(exc).rstrip(". ")
        return {}, {}, [Problem(exc.file_name or "", element_id, line,
                                f"the engine cannot use this definition: {message}",
                                code="engine_refused", params={"detail": message})]
    except MemoryError:
        raise  # not a problem of the definition: the worker reports it
    except Exception as exc:  # the engine's parser raises plain errors for some shapes
        detail = f"{exc.__class__.__name__}: {exc}"
        return {}, {}, [Problem("", None, None,
                                f"the engine cannot use this definition: {detail}",
                                code="engine_refused", params={"detail": detail})]
    return specs, dependencies, []

// Every user task of a process with lanes sits in a lane: the lane names who gets the task.
import { is } from 'bpmnlint-utils';

import { lintTexts } from './texts.js';

function laneMembers(lanes, into) {
  for (const lane of lanes || []) {
    for (const node of lane.flowNodeRef || []) {
      into.add(node.id);
    }
    if (lane.childLaneSet) {
      laneMembers(lane.childLaneSet.lanes, into);
    }
  }
  return into;
}

export default function userTaskInLane() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:Process')) {
      return;
    }
    const members = new Set();
    for (const laneSet of node.laneSets || []) {
      laneMembers(laneSet.lanes, members);
    }
    for (const element of node.flowElements || []) {
      if (is(element, 'bpmn:UserTask') && !members.has(element.id)) {
        reporter.report(element.id, lintTexts.userTaskLane);
      }
    }
  }
  return { check };
}

// The project's bpmnlint rule set, packed for the browser the way rollup-plugin-bpmnlint
// packs a .bpmnlintrc: a resolver over the bundled rules and the config naming them.
import endEventRequired from 'bpmnlint/rules/end-event-required';
import fakeJoin from 'bpmnlint/rules/fake-join';
import labelRequired from 'bpmnlint/rules/label-required';
import noDisconnected from 'bpmnlint/rules/no-disconnected';
import noDuplicateSequenceFlows from 'bpmnlint/rules/no-duplicate-sequence-flows';
import startEventRequired from 'bpmnlint/rules/start-event-required';

import pythonConditions from './python-conditions.js';
import timerHasTime from './timer-has-time.js';
import userTaskInLane from './user-task-in-lane.js';

const RULES = {
  'bpmnlint/end-event-required': endEventRequired,
  'bpmnlint/fake-join': fakeJoin,
  'bpmnlint/label-required': labelRequired,
  'bpmnlint/no-disconnected': noDisconnected,
  'bpmnlint/no-duplicate-sequence-flows': noDuplicateSequenceFlows,
  'bpmnlint/start-event-required': startEventRequired,
  'bpmnlint-plugin-pudong/python-conditions': pythonConditions,
  'bpmnlint-plugin-pudong/timer-has-time': timerHasTime,
  'bpmnlint-plugin-pudong/user-task-in-lane': userTaskInLane,
};

const resolver = {
  resolveRule(pkg, ruleName) {
    const rule = RULES[`${pkg}/${ruleName}`];
    if (!rule) {
      throw new Error(`cannot resolve rule <${pkg}/${ruleName}>`);
    }
    return rule;
  },
  resolveConfig(pkg, configName) {
    throw new Error(`cannot resolve config <${configName}> in <${pkg}>`);
  },
};

const config = {
  rules: {
    'end-event-required': 'error',
    'fake-join': 'warn',
    'label-required': 'warn',
    'no-disconnected': 'error',
    'no-duplicate-sequence-flows': 'error',
    'start-event-required': 'error',
    'pudong/python-conditions': 'error',
    'pudong/timer-has-time': 'error',
    'pudong/user-task-in-lane': 'error',
  },
};

export default { resolver, config };

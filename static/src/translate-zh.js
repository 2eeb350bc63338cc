// The modeller in Chinese: a diagram-js `translate` service over the community translation of
// the palette and context pad (bpmn-js-i18n) and the project's own translation of the
// properties panel and the lint messages. Ids and technical values stay as they are.
import community from 'bpmn-js-i18n/translations/zn.js';

import panel from './translations-panel-zh.js';

const dictionary = { ...community, ...panel };

export function translateZh(template, replacements = {}) {
  const text = Object.prototype.hasOwnProperty.call(dictionary, template)
    ? dictionary[template] : template;
  return text.replace(/{([^}]+)}/g, (_, key) => (key in replacements ? replacements[key]
    : `{${key}}`));
}

export default { translate: ['value', translateZh] };

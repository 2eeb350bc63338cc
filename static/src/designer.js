// The designer page: bpmn-js Modeler with the properties panel and the Camunda 7 moddle,
// export of the edited XML and server-side validation through the engine.
import './designer.css';

import BpmnModeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
} from 'bpmn-js-properties-panel';
import CamundaPlatformBehaviors from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';

import { downloadText, getText, postJSON } from './http.js';
import { ProblemList } from './problems.js';

function readTexts(root) {
  const node = root.querySelector('script[data-designer-text]');
  return node ? JSON.parse(node.textContent) : {};
}

function fileBaseName(name) {
  return name.split('/').pop() || 'diagram.bpmn';
}

export class Designer {
  constructor(root) {
    this.root = root;
    this.texts = readTexts(root);
    this.name = root.dataset.fileName;
    this.versionId = Number(root.dataset.versionId);
    this.status = root.querySelector('[data-designer-status]');
    this.dirty = false;
    this.modeler = new BpmnModeler({
      container: root.querySelector('[data-designer-canvas]'),
      propertiesPanel: { parent: root.querySelector('[data-designer-panel]') },
      additionalModules: [
        BpmnPropertiesPanelModule,
        BpmnPropertiesProviderModule,
        CamundaPlatformPropertiesProviderModule,
        CamundaPlatformBehaviors,
      ],
      moddleExtensions: { camunda: camundaModdle },
    });
    this.problems = new ProblemList(root.querySelector('[data-designer-problems]'), this.modeler,
      { fileName: this.name, texts: this.texts });
    this.modeler.on('commandStack.changed', () => { this.dirty = true; });
    root.querySelector('[data-designer-export]').addEventListener('click', () => this.download());
    root.querySelector('[data-designer-validate]').addEventListener('click', () => this.validate());
    window.addEventListener('beforeunload', (event) => {
      if (this.dirty) {
        event.preventDefault();
        event.returnValue = '';
      }
    });
    this.ready = this.load(root.dataset.xmlUrl);
  }

  say(text) {
    this.status.textContent = text;
  }

  async load(url) {
    this.problems.clear();
    this.say(this.texts.loading);
    try {
      const xml = await getText(url);
      const { warnings } = await this.modeler.importXML(xml);
      this.modeler.get('canvas').zoom('fit-viewport', 'auto');
      this.dirty = false;
      this.say(warnings.length ? this.texts.importWarnings.replace('{n}', warnings.length)
        : this.texts.loaded);
      this.root.dataset.state = 'ready';
      return warnings;
    } catch (error) {
      this.root.dataset.state = 'error';
      this.say(`${this.texts.loadFailed} ${error.message}`);
      throw error;
    }
  }

  async exportXML() {
    const { xml } = await this.modeler.saveXML({ format: true });
    return xml;
  }

  async download() {
    downloadText(await this.exportXML(), fileBaseName(this.name), 'application/xml');
    this.dirty = false;
    this.say(this.texts.exported);
  }

  async validate() {
    this.say(this.texts.validating);
    this.root.dataset.validation = 'running';
    try {
      const xml = await this.exportXML();
      const result = await postJSON(this.root.dataset.validateUrl,
        { version_id: this.versionId, name: this.name, xml });
      this.problems.show(result.problems);
      this.say(result.problems.length
        ? this.texts.problemsFound.replace('{n}', result.problems.length)
        : this.texts.valid);
      this.root.dataset.validation = result.problems.length ? 'invalid' : 'valid';
      return result;
    } catch (error) {
      this.root.dataset.validation = 'error';
      this.say(`${this.texts.validateFailed} ${error.message}`);
      throw error;
    }
  }
}

const root = document.querySelector('[data-designer]');
if (root) {
  window.designer = new Designer(root);
}

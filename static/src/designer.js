// The designer: bpmn-js Modeler with the properties panel and the Camunda 7 moddle, in Chinese
// when the page is; the project's lint rules in the browser; every diagram of a file reachable;
// the server's check; and, in a handbook's workspace, import (file, drop, paste), autosave in
// this browser, and saving the draft (a newer draft saved meanwhile is shown side by side).
import './designer.css';
import 'bpmn-js-bpmnlint/dist/assets/css/bpmn-js-bpmnlint.css';

import BpmnModeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
} from 'bpmn-js-properties-panel';
import lintModule from 'bpmn-js-bpmnlint';
import CamundaPlatformBehaviors from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';

import { renderComparison } from './compare.js';
import { DiagramSwitcher } from './diagrams.js';
import { downloadText, getText, postForm, postJSON } from './http.js';
import lintConfig from './lint/config.js';
import { setLintTexts } from './lint/texts.js';
import { ProblemList } from './problems.js';
import translateZh, { translatePanel, translateZh as zh } from './translate-zh.js';

const AUTOSAVE_DELAY = 800;

function readJSON(root, selector) {
  const node = root.querySelector(selector);
  return node ? JSON.parse(node.textContent) : {};
}

function fileBaseName(name) {
  return name.split('/').pop() || 'diagram.bpmn';
}

function fill(text, values) {
  return text.replace(/{(\w+)}/g, (_, key) => (key in values ? values[key] : `{${key}}`));
}

// As the server names a BPMN file (app/services/handbook_drafts.FILE_NAME).
const FILE_NAME = /^bpmn\/(?:shared\/)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,98}\.bpmn$/;

function looksLikeXml(text) {
  return /^\s*(<\?xml|<([\w-]+:)?definitions[\s>])/.test(text || '');
}

export class Designer {
  constructor(root) {
    this.root = root;
    this.texts = readJSON(root, 'script[data-designer-text]');
    this.name = root.dataset.fileName;
    this.versionId = Number(root.dataset.versionId);
    this.status = root.querySelector('[data-designer-status]');
    this.dirty = false;
    this.fileWarnings = [];
    this.chinese = document.documentElement.lang.startsWith('zh');
    this.translate = this.chinese ? zh : (text, values) => fill(text, values || {});
    setLintTexts(readJSON(root, 'script[data-lint-text]'));
    this.workspace = root.dataset.saveUrl ? {
      key: root.dataset.key,
      draftId: root.dataset.draftId ? Number(root.dataset.draftId) : null,
      revision: root.dataset.draftRevision ? Number(root.dataset.draftRevision) : null,
      sourceId: Number(root.dataset.versionId),
      storageKey: `designer:${root.dataset.key}:${this.name}`,
    } : null;
    this.modeler = new BpmnModeler({
      container: root.querySelector('[data-designer-canvas]'),
      propertiesPanel: { parent: root.querySelector('[data-designer-panel]') },
      linting: { bpmnlint: lintConfig, active: true },
      additionalModules: [
        BpmnPropertiesPanelModule,
        BpmnPropertiesProviderModule,
        CamundaPlatformPropertiesProviderModule,
        CamundaPlatformBehaviors,
        lintModule,
        ...(this.chinese ? [translateZh] : []),
      ],
      moddleExtensions: { camunda: camundaModdle },
    });
    if (this.chinese) {
      translatePanel(root.querySelector('[data-designer-panel]'));
    }
    const switchBox = root.querySelector('[data-diagram-switch] select');
    this.diagrams = switchBox ? new DiagramSwitcher(switchBox, this.modeler, {
      texts: this.texts, onOpen: (diagram, warnings) => this.afterOpen(warnings),
    }) : null;
    this.problems = new ProblemList(root.querySelector('[data-designer-problems]'), this.modeler,
      { fileName: this.name, texts: this.texts, diagrams: this.diagrams });
    this.modeler.on('linting.completed', ({ issues }) => this.showLint(issues));
    this.modeler.on('commandStack.changed', () => this.changed());
    this.bind('[data-designer-export]', () => this.download());
    this.bind('[data-designer-validate]', () => this.validate());
    if (this.workspace) {
      this.bindWorkspace();
    }
    window.addEventListener('beforeunload', (event) => {
      if (this.dirty) {
        event.preventDefault();
        event.returnValue = '';
      }
    });
    this.ready = this.load(root.dataset.xmlUrl);
  }

  bind(selector, handler) {
    const node = this.root.querySelector(selector);
    if (node) {
      node.addEventListener('click', () => handler().catch(() => {}));
    }
  }

  say(text) {
    this.status.textContent = text;
  }

  showLint(issues) {
    const found = [];
    for (const [elementId, list] of Object.entries(issues || {})) {
      for (const issue of list) {
        found.push({
          // A process drawn as its participant is reported there, its own id kept aside.
          file: this.name, element: issue.actualElementId || issue.id || elementId,
          message: this.translate(issue.message, {}), severity: issue.category,
          rule: issue.rule,
        });
      }
    }
    this.root.dataset.lintIssues = String(found.length);
    this.problems.showLint(found);
  }

  afterOpen(warnings) {
    // Another diagram of the same file: the file's import warnings stay listed.
    this.problems.render();
    this.showWarnings([...this.fileWarnings, ...(warnings || [])], []);
  }

  async importText(xml, { serverWarnings = [] } = {}) {
    this.problems.reset();
    const { warnings } = await this.modeler.importXML(xml);
    this.modeler.get('canvas').zoom('fit-viewport', 'auto');
    if (this.diagrams) {
      this.diagrams.refresh();
    }
    this.fileWarnings = [...serverWarnings.map((message) => ({ message })), ...warnings];
    this.showWarnings(this.fileWarnings, []);
    return warnings;
  }

  showWarnings(warnings, serverWarnings) {
    const box = this.root.querySelector('[data-import-warnings]');
    if (!box) {
      return;
    }
    const items = [...serverWarnings, ...warnings.map((w) => w.message || String(w))];
    const list = box.querySelector('ul');
    list.replaceChildren(...items.map((text) => {
      const item = document.createElement('li');
      item.textContent = text;
      return item;
    }));
    box.hidden = !items.length;
    this.root.dataset.warningCount = String(items.length);
  }

  async load(url) {
    this.say(this.texts.loading);
    try {
      const xml = await getText(url);
      const warnings = await this.importText(xml);
      this.dirty = false;
      this.loadedXml = xml;
      this.say(warnings.length ? fill(this.texts.importWarnings, { n: warnings.length })
        : this.texts.loaded);
      this.root.dataset.state = 'ready';
      if (this.workspace) {
        this.offerRestore();
      }
      return warnings;
    } catch (error) {
      this.root.dataset.state = 'error';
      this.say(`${this.texts.loadFailed} ${error.message}`);
      throw error;
    }
  }

  async exportXML() {
    try {
      const { xml } = await this.modeler.saveXML({ format: true });
      return xml;
    } catch (error) {
      this.say(`${this.texts.exportFailed} ${error.message}`);
      throw error;
    }
  }

  async download() {
    downloadText(await this.exportXML(), fileBaseName(this.name), 'application/xml');
    this.say(this.texts.exported);
  }

  async validate() {
    this.say(this.texts.validating);
    this.root.dataset.validation = 'running';
    this.problems.show([]); // a failed check must not leave the last check's markers
    try {
      const xml = await this.exportXML();
      const result = await postJSON(this.root.dataset.validateUrl,
        { version_id: this.versionId, name: this.name, xml });
      this.problems.show(result.problems);
      this.say(result.problems.length
        ? fill(this.texts.problemsFound, { n: result.problems.length }) : this.texts.valid);
      this.root.dataset.validation = result.problems.length ? 'invalid' : 'valid';
      return result;
    } catch (error) {
      this.root.dataset.validation = 'error';
      this.say(`${this.texts.validateFailed} ${error.message}`);
      throw error;
    }
  }

  // ------------------------------------------------------------------ the workspace

  bindWorkspace() {
    this.bind('[data-designer-save]', () => this.save());
    const picker = this.root.querySelector('[data-designer-import]');
    picker.addEventListener('change', () => {
      if (picker.files.length) {
        this.importFile(picker.files[0]).catch(() => {}).finally(() => { picker.value = ''; });
      }
    });
    const canvas = this.root.querySelector('[data-designer-canvas]');
    canvas.addEventListener('dragover', (event) => {
      event.preventDefault();
      canvas.classList.add('drop-target');
    });
    canvas.addEventListener('dragleave', () => canvas.classList.remove('drop-target'));
    canvas.addEventListener('drop', (event) => {
      event.preventDefault();
      canvas.classList.remove('drop-target');
      const [file] = event.dataTransfer.files;
      if (file) {
        this.importFile(file).catch(() => {});
      }
    });
    const dialog = this.root.querySelector('[data-paste-dialog]');
    this.bind('[data-designer-paste]', async () => dialog.showModal());
    dialog.querySelector('form').addEventListener('submit', (event) => {
      const text = dialog.querySelector('textarea').value;
      if (event.submitter && event.submitter.value === 'import') {
        this.importPasted(text).catch(() => {});
      }
    });
    document.addEventListener('paste', (event) => {
      const target = event.target;
      if (target.closest && target.closest('input, textarea, [contenteditable]')) {
        return; // pasting into a field is an edit, not an import
      }
      const text = event.clipboardData && event.clipboardData.getData('text/plain');
      if (looksLikeXml(text)) {
        event.preventDefault();
        this.importPasted(text).catch(() => {});
      }
    });
    this.bind('[data-restore-accept]', () => this.restore());
    this.bind('[data-restore-discard]', async () => this.forget());
  }

  // Where an imported file goes: a file of the version with its name is replaced (the open one
  // or another); a new usable name adds the file to the draft beside the others; a name the
  // server cannot use (e.g. not Latin) replaces the open file.
  importTarget(fileName) {
    const names = [...document.querySelectorAll('#file-pick option')].map((o) => o.value);
    const same = [this.name, ...names].find((n) => fileBaseName(n) === fileName);
    if (same) {
      return same;
    }
    const candidate = `bpmn/${fileName}`;
    return this.workspace && FILE_NAME.test(candidate) ? candidate : this.name;
  }

  useFile(name) {
    if (name === this.name) {
      return;
    }
    this.name = name;
    this.root.dataset.fileName = name;
    this.problems.fileName = name;
    if (this.workspace) {
      this.workspace.storageKey = `designer:${this.workspace.key}:${name}`;
    }
    const picker = document.getElementById('file-pick');
    if (picker) {
      if (![...picker.options].some((o) => o.value === name)) {
        picker.append(new Option(name, name));
      }
      picker.value = name;
    }
  }

  async importFile(file) {
    const target = this.importTarget(file.name);
    const form = new FormData();
    form.append('name', target);
    form.append('file', file, file.name);
    return this.imported(postForm(this.root.dataset.importUrl, form), file.name, target);
  }

  async importPasted(text) {
    return this.imported(postJSON(this.root.dataset.importUrl, { name: this.name, xml: text }),
      this.texts.pasted);
  }

  async imported(request, label, target = this.name) {
    this.say(this.texts.importing);
    try {
      const result = await request;
      this.useFile(target);
      await this.importText(result.xml, { serverWarnings: result.warnings });
      this.root.dataset.imported = label;
      this.changed();
      this.say(fill(this.texts.importedFile, { name: label }));
      return result;
    } catch (error) {
      this.root.dataset.importError = error.code || 'error';
      this.problems.show((error.details && error.details.problems) || []);
      this.say(`${this.texts.importFailed} ${error.message}`);
      throw error;
    }
  }

  changed() {
    this.dirty = true;
    if (!this.workspace) {
      return;
    }
    clearTimeout(this.autosaveTimer);
    this.autosaveTimer = setTimeout(() => this.autosave().catch(() => {}), AUTOSAVE_DELAY);
  }

  async autosave() {
    const { xml } = await this.modeler.saveXML({ format: true });
    const { draftId, revision, sourceId, storageKey } = this.workspace;
    localStorage.setItem(storageKey, JSON.stringify({
      xml, draftId, revision, sourceId, at: new Date().toISOString(),
    }));
    this.root.dataset.autosaved = 'yes';
  }

  stored() {
    try {
      return JSON.parse(localStorage.getItem(this.workspace.storageKey) || 'null');
    } catch {
      return null;
    }
  }

  offerRestore() {
    const kept = this.stored();
    const banner = this.root.querySelector('[data-restore]');
    if (!kept || !kept.xml || kept.xml === this.loadedXml) {
      return;
    }
    banner.querySelector('[data-restore-when]').textContent =
      new Date(kept.at).toLocaleString(document.documentElement.lang);
    banner.hidden = false;
  }

  async restore() {
    const kept = this.stored();
    this.root.querySelector('[data-restore]').hidden = true;
    if (!kept) {
      return;
    }
    await this.importText(kept.xml);
    // The revision it was based on comes back too: a save still notices a newer draft.
    Object.assign(this.workspace, {
      draftId: kept.draftId, revision: kept.revision, sourceId: kept.sourceId,
    });
    this.dirty = true;
    this.say(this.texts.restored);
  }

  async forget() {
    localStorage.removeItem(this.workspace.storageKey);
    this.root.querySelector('[data-restore]').hidden = true;
  }

  async save({ over = null } = {}) {
    const ws = this.workspace;
    const note = this.root.querySelector('[data-designer-note]').value;
    this.say(this.texts.saving);
    this.root.dataset.save = 'running';
    const conflict = this.root.querySelector('[data-conflict]');
    conflict.hidden = true;
    const xml = await this.exportXML();
    try {
      const result = await postJSON(this.root.dataset.saveUrl, {
        draft_id: over ? over.draft_id : ws.draftId,
        revision: over ? over.revision : ws.revision,
        source_version_id: over ? over.draft_id : ws.sourceId,
        files: { [this.name]: xml }, note,
      });
      Object.assign(ws, { draftId: result.draft_id, revision: result.revision,
        sourceId: result.draft_id });
      this.versionId = result.draft_id;
      this.root.dataset.draftId = String(result.draft_id);
      this.root.dataset.draftRevision = String(result.revision);
      clearTimeout(this.autosaveTimer);
      localStorage.removeItem(ws.storageKey);
      delete this.root.dataset.autosaved;
      this.dirty = false;
      this.problems.show(result.problems);
      this.root.dataset.save = 'saved';
      this.root.dataset.validation = result.valid ? 'valid' : 'invalid';
      const review = this.root.querySelector('[data-review-link]');
      review.href = result.review_url;
      review.hidden = false;
      const outdated = result.outdated_runs
        ? ` ${fill(this.texts.runsOutdated, { n: result.outdated_runs })}` : '';
      this.say(fill(result.valid ? this.texts.saved : this.texts.savedWithProblems,
        { number: result.number, revision: result.revision, n: result.problems.length })
        + outdated);
      window.history.replaceState(null, '', `${result.workspace_url}?file=${encodeURIComponent(this.name)}`);
      return result;
    } catch (error) {
      this.root.dataset.save = error.status === 409 ? 'conflict' : 'error';
      if (error.status === 409) {
        await this.showConflict(error, xml);
      } else {
        this.problems.show((error.details && error.details.problems) || []);
      }
      this.say(`${this.texts.saveFailed} ${error.message}`);
      throw error;
    }
  }

  async showConflict(error, mine) {
    const panel = this.root.querySelector('[data-conflict]');
    const details = error.details || {};
    panel.querySelector('[data-conflict-message]').textContent = error.message;
    panel.hidden = false;
    const compare = panel.querySelector('[data-compare]');
    const texts = readJSON(panel, 'script[data-compare-text]');
    const theirsUrl = this.root.dataset.fileUrlTemplate
      .replace('__ID__', String(details.draft_id)).replace('__NAME__', this.name);
    let theirs = '';
    try {
      theirs = await getText(theirsUrl);
    } catch {
      theirs = ''; // their draft no longer holds this file: everything of mine is new
    }
    await renderComparison(compare, theirs, mine, texts);
    const keep = panel.querySelector('[data-conflict-keep]');
    keep.onclick = () => this.save({ over: details }).catch(() => {});
    const load = panel.querySelector('[data-conflict-load]');
    load.href = `${this.root.dataset.workspaceUrl}?file=${encodeURIComponent(this.name)}`;
  }
}

const root = document.querySelector('[data-designer]');
if (root) {
  window.designer = new Designer(root);
}

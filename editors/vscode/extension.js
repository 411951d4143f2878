// The Osprey extension for VS Code: registers the language (package.json does the grammar and
// the language configuration) and starts `osprey lsp` as a language server over stdio. Everything
// the editor shows beyond colours comes from that server, which runs the compiler's own passes.
'use strict';

/**
 * The command that starts the server, from the `osprey.server.command` setting. A JavaScript
 * entry point (bin/osprey.mjs of a checkout) runs under the Node that runs the extension host.
 * (The language client appends `--stdio`, which `osprey lsp` accepts.)
 * @param {{ command?: string }} settings
 * @param {string} nodePath the Node executable (process.execPath)
 * @returns {{ command: string, args: string[] }}
 */
function serverCommand(settings, nodePath) {
  const command = (settings.command || 'osprey').trim();
  const args = ['lsp'];
  if (/\.(mjs|cjs|js)$/.test(command)) return { command: nodePath, args: [command, ...args] };
  return { command, args };
}

let client = null;

async function startClient(context) {
  const vscode = require('vscode');
  const { LanguageClient, TransportKind } = require('vscode-languageclient/node');
  const config = vscode.workspace.getConfiguration('osprey.server');
  const { command, args } = serverCommand({ command: config.get('command') }, process.execPath);
  const run = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient('osprey', 'Osprey language server', { run, debug: run }, {
    documentSelector: [{ language: 'osprey' }],
  });
  try {
    await client.start();
  } catch (e) {
    void vscode.window.showErrorMessage(
      `Osprey: could not start the language server with '${command} ${args.join(' ')}': ${e && e.message ? e.message : e}. ` +
      'Set "osprey.server.command" to the osprey command (for a checkout: the path of bin/osprey.mjs).');
  }
}

async function activate(context) {
  const vscode = require('vscode');
  context.subscriptions.push(vscode.commands.registerCommand('osprey.restartServer', async () => {
    if (client) await client.stop();
    await startClient(context);
  }));
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (e) => {
    if (!e.affectsConfiguration('osprey.server')) return;
    if (client) await client.stop();
    await startClient(context);
  }));
  await startClient(context);
}

async function deactivate() {
  if (client) await client.stop();
}

module.exports = { activate, deactivate, serverCommand };

/**
 * The seed issue: spec/0016-websockets.md's code through the command line. tests/programs/seed/
 * holds §16.1's declarations (run), each function's example in a small wrapper, and §16.5 verbatim
 * (chat.osp). §16.5 binds port 8080, so it is checked and compiled to LLVM IR but never run.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listFiles, ROOT, runCli } from './helpers.ts';

const SEED = join(ROOT, 'tests', 'programs', 'seed');

describe.concurrent('seed: spec/0016 WebSocket examples', () => {
  for (const file of listFiles(SEED, '.osp')) {
    it(`osprey check ${file.slice(SEED.length + 1)}`, () => {
      const r = runCli(['check', file]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('§16.5 compiles to LLVM IR with capturing-free handlers passed as (fn, env)', () => {
    const r = runCli([join(SEED, 'chat.osp'), '--emit=llvm']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('define i32 @main()');
    expect(r.stdout).toMatch(/@osp_ws_connect\([^\n]*@ospu\.connectToChat\.chatMessageHandler\.\d+, i8\* null\)/);
    for (const sym of ['osp_ws_create_server', 'osp_ws_server_listen', 'osp_ws_server_broadcast', 'osp_ws_stop_server', 'osp_ws_send', 'osp_ws_close', 'osp_sleep']) {
      expect(r.stdout).toMatch(new RegExp(`call [^\\n]*@${sym}\\(`));
    }
  });
});

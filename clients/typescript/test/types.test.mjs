// The published type declarations: test/types/usage.ts must compile against dist/*.d.ts
// (resolved through the package's own name and "exports"), its misuse lines must fail.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('the .d.ts files type the documented usage', { timeout: 120000 }, () => {
  const tsc = path.join(pkg, 'node_modules/typescript/bin/tsc');
  let out = '';
  try {
    out = execFileSync(process.execPath, [tsc, '-p', path.join(pkg, 'test/types/tsconfig.json')], { encoding: 'utf8' });
  } catch (e) {
    out = `${e.stdout}${e.stderr}`;
  }
  assert.equal(out.trim(), '', out);
});

// Test helper: a real agentstored on a free port with a temporary data directory
// (the binary: $AGENTSTORED, else <repo>/build/net/agentstored).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const AGENTSTORED = process.env.AGENTSTORED ?? path.join(repo, 'build/net/agentstored');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Server {
  constructor(extra = []) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentstore-ts-test-'));
    this.dataDir = path.join(this.root, 'data');
    this.extra = ['--memory-dim', '4', '--durability', 'batch', ...extra];
    this.port = 0;
    this.proc = null;
  }

  // Starts (again) and waits until it listens; a restart reuses the same port.
  async start() {
    const portFile = path.join(this.root, 'port');
    fs.rmSync(portFile, { force: true });
    const log = fs.openSync(path.join(this.root, 'server.log'), 'a');
    this.proc = spawn(AGENTSTORED, ['--data-dir', this.dataDir, '--port', String(this.port),
      '--port-file', portFile, ...this.extra], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let exited = null;
    this.proc.once('exit', (code) => { exited = code; });
    for (let i = 0; i < 2000; i++) {
      if (exited !== null) throw new Error(`agentstored exited with ${exited}: ${this.log()}`);
      try {
        const p = Number(fs.readFileSync(portFile, 'utf8').trim());
        if (p > 0) {
          this.port = p;
          return this;
        }
      } catch {}
      await sleep(10);
    }
    throw new Error('agentstored did not start');
  }

  key(role) {
    const lines = fs.readFileSync(path.join(this.dataDir, 'initial-keys'), 'utf8').split('\n');
    for (const l of lines) {
      const [r, k] = l.trim().split(/\s+/);
      if (r === role) return k;
    }
    throw new Error(`no ${role} key`);
  }

  log() {
    try { return fs.readFileSync(path.join(this.root, 'server.log'), 'utf8').slice(-2000); } catch { return ''; }
  }

  // SIGSTOP, returning once every thread is stopped (kill() returns before that).
  async pause() {
    const pid = this.proc.pid;
    process.kill(pid, 'SIGSTOP');
    const stopped = () => fs.readdirSync(`/proc/${pid}/task`).every((t) => {
      const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'T';
    });
    for (let i = 0; i < 500 && !stopped(); i++) await sleep(2);
  }

  resume() {
    process.kill(this.proc.pid, 'SIGCONT');
  }

  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null) return;
    const p = this.proc;
    await new Promise((res) => { p.once('exit', res); p.kill(signal); });
    this.proc = null;
  }

  async dispose() {
    await this.stop('SIGKILL');
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

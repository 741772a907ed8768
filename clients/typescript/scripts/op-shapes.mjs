// What each operation takes (Args union members) and how its answer is shaped, read from
// the project's one declaration, net/schema/op_shapes.json (agentctl follows the same
// file). An operation of the op table missing there fails the build.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const declared = JSON.parse(fs.readFileSync(path.join(repo, 'net/schema/op_shapes.json'), 'utf8')).ops;

// -> { args: [Args member names], result: 'record:T' | 'page:T' | ... }
export function opShape(name) {
  const d = declared[name];
  if (!d) throw new Error(`operation ${name} has no entry in net/schema/op_shapes.json`);
  return { args: d.args, result: d.answer };
}

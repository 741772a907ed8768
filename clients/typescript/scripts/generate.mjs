// Build step: generates src/generated/ from the server's own declarations, so no wire
// code in this package is written by hand:
//  - flatc --ts (Debian's flatbuffers-compiler) compiles records.fbs, the op enum and
//    protocol.fbs into readers/builders (src/generated/fb/);
//  - gen_client_meta (net/tools, built with the server) prints the op table and which
//    record fields hold JSON; with the schemas this yields typed records, their
//    encoders/decoders (codec.ts) and one typed method per operation (ops.ts).
// Inputs: the repository around this package and a CMake build dir
// (AGENTSTORE_BUILD_DIR, default <repo>/build) holding net/gen_client_meta and
// net/gen_ops_fbs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { newSchema, parseFbs, simpleName } from './fbs.mjs';
import { opShape } from './op-shapes.mjs';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repo = path.resolve(pkg, '../..');
const build = path.resolve(process.env.AGENTSTORE_BUILD_DIR ?? path.join(repo, 'build'));
const outDir = path.join(pkg, 'src/generated');
const FLATC = process.env.FLATC ?? 'flatc';

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
const meta = JSON.parse(run(path.join(build, 'net/gen_client_meta'), []));
const opsFbs = run(path.join(build, 'net/gen_ops_fbs'), []);
const recordsFbs = fs.readFileSync(path.join(repo, 'common/schema/records.fbs'), 'utf8');
const protocolFbs = fs.readFileSync(path.join(repo, 'net/schema/protocol.fbs'), 'utf8');

// ---- 1. flatc --ts ----
// flatc 2.0.8's TypeScript generator refuses fixed-size arrays in structs, so for it
// `struct Uuid { b:[ubyte:16]; }` is declared as sixteen ubyte fields: the same 16-byte,
// 1-aligned layout on the wire.
const uuidDecl = /struct Uuid \{\s*b:\[ubyte:16\];\s*\}/;
if (!uuidDecl.test(recordsFbs)) throw new Error('records.fbs: struct Uuid is no longer { b:[ubyte:16]; }');
const uuidFields = Array.from({ length: 16 }, (_, i) => `b${i}:ubyte;`).join(' ');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentstore-ts-'));
fs.writeFileSync(path.join(tmp, 'records.fbs'), recordsFbs.replace(uuidDecl, `struct Uuid { ${uuidFields} }`));
fs.writeFileSync(path.join(tmp, 'ops.fbs'), opsFbs);
fs.writeFileSync(path.join(tmp, 'protocol.fbs'), protocolFbs);
fs.rmSync(outDir, { recursive: true, force: true });
const fbDir = path.join(outDir, 'fb');
run(FLATC, ['--ts', '-I', tmp, '-o', fbDir, ...['records.fbs', 'ops.fbs', 'protocol.fbs'].map((f) => path.join(tmp, f))]);
fs.rmSync(tmp, { recursive: true, force: true });

// ES modules need explicit extensions on relative imports; flatc 2.0.8 writes none.
const fbFiles = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith('.ts')) fbFiles.push(p);
  }
})(fbDir);
const generatedSource = new Map();
for (const f of fbFiles) {
  const text = fs.readFileSync(f, 'utf8').replace(/from '(\.{1,2}\/[^']+)'/g, "from '$1.js'");
  fs.writeFileSync(f, '// @ts-nocheck\n' + text);
  generatedSource.set(f, text);
}
const classFiles = fbFiles.filter((f) => f.includes(`${path.sep}agentstore${path.sep}`));
fs.writeFileSync(path.join(fbDir, 'all.ts'),
  '// Generated: every flatc type in one namespace.\n' +
  classFiles.map((f) => `export * from './${path.relative(fbDir, f).replace(/\.ts$/, '.js')}';`).join('\n') + '\n');
const allSource = classFiles.map((f) => generatedSource.get(f)).join('\n');

// ---- 2. the schema as data ----
const schema = newSchema();
parseFbs(recordsFbs, schema);
parseFbs(opsFbs, schema);
parseFbs(protocolFbs, schema);

// JSON-typed fields: records from the server's field tables; argument strings that
// protocol.fbs documents as JSON text.
const jsonFields = new Map(Object.entries(meta.json_fields).map(([t, f]) => [t, new Set(f)]));
jsonFields.set('PatchArgs', new Set(['patch']));
jsonFields.set('ConfigArgs', new Set(['data']));
jsonFields.set('ImportArgs', new Set(['json']));

const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const upper = (s) => s[0].toUpperCase() + s.slice(1);
const need = (name) => {
  if (!new RegExp(`\\b${name}\\(`).test(allSource)) throw new Error(`flatc output has no ${name}()`);
  return name;
};

function kindOf(table, f) {
  const t = f.type;
  if (jsonFields.get(table.name)?.has(f.name)) {
    if (t.kind !== 'string') throw new Error(`${table.name}.${f.name}: JSON field is not a string`);
    return { k: 'json' };
  }
  if (t.kind === 'string') return { k: 'string' };
  if (t.kind === 'scalar') return { k: 'scalar', s: t.scalar };
  if (t.kind === 'ref') {
    const n = simpleName(t.ref);
    if (n === 'Uuid') return { k: 'uuid' };
    if (schema.enums.has(n)) return { k: 'enum', e: schema.enums.get(n) };
    if (schema.unions.has(n)) return { k: 'union' };
    if (schema.tables.has(n)) return { k: 'table', t: n };
    throw new Error(`unknown type ${t.ref}`);
  }
  if (t.kind === 'vector') {
    const e = t.elem;
    if (e.kind === 'string') return { k: 'vstring' };
    if (e.kind === 'scalar') return { k: 'vscalar', s: e.scalar };
    const n = simpleName(e.ref);
    if (n === 'Uuid') return { k: 'vuuid' };
    if (schema.tables.has(n)) return { k: 'vtable', t: n };
  }
  throw new Error(`${table.name}.${f.name}: unsupported type`);
}

const tsScalar = (s) => (s === 'bool' ? 'boolean' : s === 'long' || s === 'ulong' ? 'bigint' : 'number');
const typedArray = { float: 'Float32Array', double: 'Float64Array', ubyte: 'Uint8Array' };
function tsType(kd, input) {
  switch (kd.k) {
    case 'json': return 'Json';
    case 'string': return 'string';
    case 'scalar': return input && tsScalar(kd.s) === 'bigint' ? 'bigint | number' : tsScalar(kd.s);
    case 'uuid': return 'string';
    case 'enum': return input ? `${kd.e.name} | number` : kd.e.name;
    case 'table': return input ? `${kd.t}Input` : kd.t;
    case 'vstring': case 'vuuid': return 'string[]';
    case 'vscalar': return typedArray[kd.s] ? (input ? `${typedArray[kd.s]} | number[]` : typedArray[kd.s]) : `${tsScalar(kd.s)}[]`;
    case 'vtable': return input ? `${kd.t}Input[]` : `${kd.t}[]`;
  }
  throw new Error(kd.k);
}

const conv = { bool: 'bool', byte: 'i8', ubyte: 'u8', short: 'i16', ushort: 'u16', int: 'i32', uint: 'u32',
  long: 'i64', ulong: 'u64', float: 'f64', double: 'f64' };

let code = `// Generated by scripts/generate.mjs from records.fbs, protocol.fbs and the op table.
// Do not edit.
import * as flatbuffers from 'flatbuffers';
import * as fb from './fb/all.js';
import * as rt from '../codec-runtime.js';
export type Json = rt.Json;
const S = new fb.Uuid();
`;

for (const e of schema.enums.values()) {
  if (e.name === 'Op') continue;
  code += `\nexport type ${e.name} = ${e.values.map((v) => `'${v.name}'`).join(' | ')};\n`;
  code += `export const ${e.name}Names: Record<number, ${e.name}> = {${e.values.map((v) => `${v.value}: '${v.name}'`).join(', ')}};\n`;
  code += `export const ${e.name}Values: Record<string, number> = {${e.values.map((v) => `'${v.name}': ${v.value}`).join(', ')}};\n`;
}

const codecTables = [...schema.tables.values()].filter((t) => !t.struct &&
  !t.fields.some((f) => kindOf(t, f).k === 'union'));
for (const t of codecTables) {
  const fields = t.fields.map((f) => ({ f, kd: kindOf(t, f), m: camel(f.name), M: upper(camel(f.name)) }));
  // interfaces
  code += `\n/** ${t.ns}.${t.name} as a plain object (snake_case names as in the data model). */\n`;
  code += `export interface ${t.name} {\n${fields.map(({ f, kd }) => {
    const nullable = ['json', 'string', 'uuid', 'table'].includes(kd.k) || f.optional || (kd.k === 'vscalar' && typedArray[kd.s]);
    return `  ${f.name}: ${tsType(kd, false)}${nullable ? ' | null' : ''};`;
  }).join('\n')}\n}\n`;
  code += `export interface ${t.name}Input {\n${fields.map(({ f, kd }) => `  ${f.name}?: ${tsType(kd, true)} | null;`).join('\n')}\n}\n`;
  // decoder
  const dec = fields.map(({ f, kd, m }) => {
    need(m);
    let e;
    switch (kd.k) {
      case 'json': e = `rt.parseJson(t.${m}() as string | null)`; break;
      case 'string': e = `t.${m}() as string | null`; break;
      case 'scalar': e = `t.${m}()`; break;
      case 'uuid': e = `rt.uuidOf(t.${m}(S))`; break;
      case 'enum': e = f.optional ? `rt.optName(${kd.e.name}Names, t.${m}())` : `rt.name(${kd.e.name}Names, t.${m}())`; break;
      case 'table': e = `rt.opt(t.${m}(), decode${kd.t})`; break;
      case 'vstring': e = `rt.list(t.${need(m + 'Length')}(), (i) => t.${m}(i) as string)`; break;
      case 'vuuid': e = `rt.list(t.${need(m + 'Length')}(), (i) => rt.uuidOf(t.${m}(i, S))!)`; break;
      case 'vscalar':
        e = typedArray[kd.s] ? `rt.typed(${typedArray[kd.s]}, t.${need(m + 'Length')}(), (i) => t.${m}(i)!)`
          : `rt.list(t.${need(m + 'Length')}(), (i) => t.${m}(i)!)`;
        break;
      case 'vtable': e = `rt.list(t.${need(m + 'Length')}(), (i) => decode${kd.t}(t.${m}(i)!))`; break;
    }
    return `    ${f.name}: ${e},`;
  }).join('\n');
  code += `export function decode${t.name}(t: fb.${t.name}): ${t.name} {\n  return {\n${dec}\n  };\n}\n`;
  // Readers share one ByteBuffer and one root accessor per table (codec-runtime.ts,
  // recordBytes): a record is decoded completely before its reader returns.
  code += `const ${t.name}Root = new fb.${t.name}();\n`;
  code += `export function read${t.name}(bytes: Uint8Array): ${t.name} {\n  return decode${t.name}(fb.${t.name}.${need('getRootAs' + t.name)}(rt.recordBytes(bytes), ${t.name}Root));\n}\n`;
  // encoder
  const keys = fields.map(({ f }) => `'${f.name}'`).join(', ');
  code += `const ${t.name}Keys = new Set([${keys}]);\n`;
  let pre = '';
  let add = '';
  for (const { f, kd, m, M } of fields) {
    const v = `o.${f.name}`;
    const label = `'${t.name}.${f.name}'`;
    const has = `${v} != null`;
    switch (kd.k) {
      case 'json': pre += `  const ${m}_ = ${has} ? b.createString(rt.jsonText(${v}, ${label})) : 0;\n`; break;
      case 'string': pre += `  const ${m}_ = ${has} ? b.createString(rt.str(${v}, ${label})) : 0;\n`; break;
      case 'table': pre += `  const ${m}_ = ${has} ? encode${kd.t}(b, ${v}!) : 0;\n`; break;
      case 'vstring': pre += `  const ${m}_ = ${has} ? fb.${t.name}.${need('create' + M + 'Vector')}(b, rt.arr(${v}, ${label}).map((s) => b.createString(rt.str(s, ${label})))) : 0;\n`; break;
      case 'vtable': pre += `  const ${m}_ = ${has} ? fb.${t.name}.${need('create' + M + 'Vector')}(b, rt.arr(${v}, ${label}).map((x) => encode${kd.t}(b, x as ${kd.t}Input))) : 0;\n`; break;
      case 'vscalar': pre += `  const ${m}_ = ${has} ? fb.${t.name}.${need('create' + M + 'Vector')}(b, rt.nums(${v}, ${label}) as any) : 0;\n`; break;
      case 'vuuid': pre += `  const ${m}_ = ${has} ? rt.uuidVector(b, rt.arr(${v}, ${label})) : 0;\n`; break;
    }
    const addFn = `fb.${t.name}.${need('add' + M)}`;
    switch (kd.k) {
      case 'uuid': add += `  if (${has}) ${addFn}(b, rt.uuidStruct(b, ${v}, ${label}));\n`; break;
      case 'scalar': case 'enum': {
        const val = kd.k === 'enum' ? `rt.enumValue(${kd.e.name}Values, ${v}, ${label})` : `rt.${conv[kd.s]}(${v}, ${label})`;
        add += f.optional
          ? `  if (${has}) { b.forceDefaults(true); ${addFn}(b, ${val}); b.forceDefaults(false); }\n`
          : `  if (${has}) ${addFn}(b, ${val});\n`;
        break;
      }
      default: add += `  if (${m}_) ${addFn}(b, ${m}_);\n`;
    }
  }
  code += `export function encode${t.name}(b: flatbuffers.Builder, o: ${t.name}Input): number {\n` +
    `  rt.checkKeys(o, ${t.name}Keys, '${t.name}');\n${pre}  fb.${t.name}.${need('start' + t.name)}(b);\n${add}` +
    `  return fb.${t.name}.${need('end' + t.name)}(b);\n}\n`;
}

// Record types a Blob may hold, and every argument shape of the Args union.
code += `\nexport const recordReaders: Record<string, (bytes: Uint8Array) => unknown> = {\n` +
  codecTables.filter((t) => t.ns === 'agentstore.fb').map((t) => `  ${t.name}: read${t.name},`).join('\n') + '\n};\n';
// Record types by number (the change feed's Change.type and SubscribeArgs.types), from
// the server's RecordType (gen_client_meta): the plural table name and, when the record
// has a table in records.fbs ("user_agents" -> UserAgent), its reader.
const recordTableOf = (name) => {
  const t = name.replace(/s$/, '').split('_').map(upper).join('');
  return codecTables.some((c) => c.name === t && c.ns === 'agentstore.fb') ? t : null;
};
const recordTypes = (meta.record_types ?? []).map((r) => ({ ...r, table: recordTableOf(r.name) }));
code += `\n/** Record type numbers and names (RecordType on the server). */\n` +
  `export type RecordTypeName = ${recordTypes.map((r) => `'${r.name}'`).join(' | ')};\n` +
  `export const recordTypes: Record<number, { name: RecordTypeName; read: ((bytes: Uint8Array) => unknown) | null }> = {\n` +
  recordTypes.map((r) => `  ${r.number}: { name: '${r.name}', read: ${r.table ? `read${r.table}` : 'null'} },`).join('\n') + '\n};\n' +
  `/** The record each type's changes carry. */\nexport interface RecordsByType {\n` +
  recordTypes.map((r) => `  ${r.name}: ${r.table ?? 'Uint8Array'};`).join('\n') + '\n}\n';
const argsUnion = schema.unions.get('Args');
code += `\n/** The Args union: each member's union tag, encoder and field names. */\n` +
  `export const argShapes: Record<string, { tag: number; encode: (b: flatbuffers.Builder, o: any) => number; keys: Set<string> }> = {\n` +
  argsUnion.members.map((m) => {
    const n = simpleName(m.name);
    return `  ${n}: { tag: ${m.value}, encode: encode${n}, keys: ${n}Keys },`;
  }).join('\n') + '\n};\n';
const resultUnion = schema.unions.get('Result');
code += `export const resultTags: Record<string, number> = {${resultUnion.members.map((m) => `${simpleName(m.name)}: ${m.value}`).join(', ')}};\n`;
fs.writeFileSync(path.join(outDir, 'codec.ts'), code);

// ---- 3. operations ----
const resultType = (r) => {
  const [k, t] = r.split(':');
  switch (k) {
    case 'record': return t;
    case 'page': return `rt.Page<${t}>`;
    case 'records': return `${t}[]`;
    case 'none': return 'void';
    case 'message_append': return '{ message: Message; chat: Chat }';
    case 'track': return '{ user_agent: UserAgent; log: UsageLog; quotas: Quota[] }';
    case 'new_key': return '{ key: ApiKey; secret: string }';
    case 'status': return 'StatusInfo';
    case 'auth': return 'Authenticated';
    case 'hits': return 'rt.MemoryHit<UserMemory>[]';
    case 'summary': return 'SummaryRow[]';
    case 'limit': return 'LimitAnswer';
    case 'count': return 'bigint';
    case 'raw': return 'rt.Page<Uint8Array>';
    case 'json': return 'unknown';  // a collection's JSON value, parsed
    case 'json_page': return 'rt.Page<unknown>';
    default: return 'unknown';
  }
};
const argNames = argsUnion.members.map((m) => simpleName(m.name));
let ops = `// Generated by scripts/generate.mjs from the op table (engine/include/agentstore/engine/
// operations.h, via gen_client_meta). Do not edit.
import type * as rt from '../codec-runtime.js';
import type { CallOptions } from '../options.js';
import type { ${[...codecTables.map((t) => t.name), ...codecTables.map((t) => t.name + 'Input')].join(', ')} } from './codec.js';

export interface OperationInfo {
  name: string;
  op: number;
  kind: 'read' | 'write';
  roles: string[];
  implemented: boolean;
  summary: string;
  /** Args union members this operation takes (empty: none). */
  args: string[];
  /** How its answer is shaped (see Operations). */
  result: string;
}

/** Every operation of the server's op table, in op-number order. */
export const operations: OperationInfo[] = [
`;
const methods = [];
for (const op of meta.operations) {
  const shape = opShape(op.name);
  for (const a of shape.args) if (!argNames.includes(a)) throw new Error(`${op.name}: ${a} is not in the Args union`);
  ops += `  ${JSON.stringify({ ...op, args: shape.args, result: shape.result })},\n`;
  const argType = shape.args.length ? shape.args.map((a) => `${a}Input`).join(' | ') : null;
  const method = camel(op.name);
  const doc = `  /** ${op.summary} (${op.kind}; ${op.roles.length ? op.roles.join(', ') : 'anyone'}${op.implemented ? '' : '; not implemented by the server yet'}). */\n`;
  if (/stream/.test(shape.result)) continue;  // Client.subscribe(), src/feed.ts
  const optionalArgs = /^(page|records):/.test(shape.result);
  methods.push(doc + (argType
    ? `  ${method}(args${optionalArgs ? '?' : ''}: ${argType}, opts?: CallOptions): Promise<${resultType(shape.result)}> {\n    return this.invoke(operations[${op.op}], args, opts) as Promise<${resultType(shape.result)}>;\n  }\n`
    : `  ${method}(opts?: CallOptions): Promise<${resultType(shape.result)}> {\n    return this.invoke(operations[${op.op}], undefined, opts) as Promise<${resultType(shape.result)}>;\n  }\n`));
}
ops += `];
for (const [i, o] of operations.entries()) if (o.op !== i) throw new Error('op table out of order');

/** One typed method per operation; Client and Pool supply invoke(). */
export abstract class Operations {
  protected abstract invoke(op: OperationInfo, args: unknown, opts?: CallOptions): Promise<unknown>;

${methods.join('\n')}}
`;
fs.writeFileSync(path.join(outDir, 'ops.ts'), ops);
console.log(`generated ${meta.operations.length} operations, ${codecTables.length} codecs into ${path.relative(pkg, outDir)}`);

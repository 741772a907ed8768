// A reader for the small FlatBuffers schema subset agentstore uses (namespace, include,
// enum, union, struct, table, root_type; scalars, strings, vectors, optional scalars).
// flatc 2.0.8 cannot print a schema as data for TypeScript use (its --jsonschema
// refuses optional scalars and it ships no reflection.fbs), so the generator reads the
// same .fbs files flatc compiles; flatc still produces all wire code.

const SCALARS = new Set([
  'bool', 'byte', 'ubyte', 'short', 'ushort', 'int', 'uint', 'long', 'ulong', 'float',
  'double', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64',
  'float32', 'float64',
]);
const CANON = { int8: 'byte', uint8: 'ubyte', int16: 'short', uint16: 'ushort', int32: 'int',
  uint32: 'uint', int64: 'long', uint64: 'ulong', float32: 'float', float64: 'double' };

function tokenize(text) {
  const src = text.replace(/\/\/[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
  const re = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*|-?[0-9][0-9.eE+-]*|[{}()[\]:;=,])/gy;
  const out = [];
  let m;
  let last = 0;
  while ((m = re.exec(src)) !== null) {
    out.push(m[1]);
    last = re.lastIndex;
  }
  if (src.slice(last).trim() !== '') throw new Error(`fbs: cannot read near "${src.slice(last, last + 40)}"`);
  return out;
}

function parseType(toks, i) {
  if (toks[i] === '[') {
    const [elem, j] = parseType(toks, i + 1);
    let k = j;
    let fixed = null;
    if (toks[k] === ':') { fixed = Number(toks[k + 1]); k += 2; }
    if (toks[k] !== ']') throw new Error('fbs: expected ]');
    return [{ kind: fixed ? 'array' : 'vector', elem, fixed }, k + 1];
  }
  const name = toks[i];
  if (SCALARS.has(name)) return [{ kind: 'scalar', scalar: CANON[name] ?? name }, i + 1];
  if (name === 'string') return [{ kind: 'string' }, i + 1];
  return [{ kind: 'ref', ref: name }, i + 1];
}

// Parses one file's text into declarations appended to `schema`.
export function parseFbs(text, schema) {
  const toks = tokenize(text);
  let ns = '';
  let i = 0;
  const expect = (t) => { if (toks[i] !== t) throw new Error(`fbs: expected ${t}, got ${toks[i]}`); i++; };
  const skipAttrs = () => {
    if (toks[i] !== '(') return;
    let depth = 0;
    do { if (toks[i] === '(') depth++; else if (toks[i] === ')') depth--; i++; } while (depth > 0);
  };
  while (i < toks.length) {
    const t = toks[i++];
    if (t === 'include' || t === 'root_type' || t === 'file_identifier' || t === 'file_extension' || t === 'attribute') {
      while (toks[i] !== ';') i++;
      i++;
    } else if (t === 'namespace') {
      ns = toks[i++];
      expect(';');
    } else if (t === 'enum' || t === 'union') {
      const name = toks[i++];
      let underlying = 'ubyte';
      if (toks[i] === ':') { underlying = CANON[toks[i + 1]] ?? toks[i + 1]; i += 2; }
      skipAttrs();
      expect('{');
      const values = [];
      let next = t === 'union' ? 1 : 0;
      while (toks[i] !== '}') {
        const vname = toks[i++];
        let value = next;
        if (toks[i] === '=') { value = Number(toks[i + 1]); i += 2; }
        values.push({ name: vname, value });
        next = value + 1;
        if (toks[i] === ',') i++;
      }
      expect('}');
      if (t === 'enum') schema.enums.set(name, { name, ns, underlying, values });
      else schema.unions.set(name, { name, ns, members: values });
    } else if (t === 'table' || t === 'struct') {
      const name = toks[i++];
      skipAttrs();
      expect('{');
      const fields = [];
      while (toks[i] !== '}') {
        const fname = toks[i++];
        expect(':');
        const [type, j] = parseType(toks, i);
        i = j;
        let def = null;
        if (toks[i] === '=') { def = toks[i + 1]; i += 2; }
        skipAttrs();
        expect(';');
        fields.push({ name: fname, type, def, optional: def === 'null' });
      }
      expect('}');
      schema.tables.set(name, { name, ns, struct: t === 'struct', fields });
    } else {
      throw new Error(`fbs: unexpected ${t}`);
    }
  }
  return schema;
}

export function newSchema() {
  return { enums: new Map(), unions: new Map(), tables: new Map() };
}

// "agentstore.fb.User" -> "User" (names are unique across agentstore's namespaces).
export function simpleName(ref) {
  const k = ref.lastIndexOf('.');
  return k < 0 ? ref : ref.slice(k + 1);
}

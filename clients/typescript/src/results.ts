// Turns a Response's result union into what an operation's method promises (the
// operation's `result` shape from the generated op list), using the generated decoders.
import { AgentstoreError } from './errors.js';
import {
  decodeAuthenticated, decodeCountResult, decodeLimitAnswer, decodeStatusInfo,
  decodeFeedPosition, decodeUsageSummaryResult, recordReaders, resultTags,
} from './generated/codec.js';
import * as fb from './generated/fb/all.js';
import type { OperationInfo } from './generated/ops.js';

// Accessors reused for every answer: decoding is synchronous and keeps none of them.
const blob = new fb.Blob();
const recordsTable = new fb.Records();

function want(op: OperationInfo, r: fb.Response, tag: string): void {
  if (r.resultType() !== resultTags[tag])
    throw new AgentstoreError('protocol', `expected a ${tag} answer, got result type ${r.resultType()}`, { op: op.name });
}

function reader(op: OperationInfo, type: string): (b: Uint8Array) => unknown {
  const f = recordReaders[type];
  if (!f) throw new AgentstoreError('protocol', `no reader for record type ${type}`, { op: op.name });
  return f;
}

function blobs(list: { itemsLength(): number; items(i: number, o?: fb.Blob): fb.Blob | null }): Uint8Array[] {
  const out: Uint8Array[] = [];
  const n = list.itemsLength();
  for (let i = 0; i < n; i++) out.push(list.items(i, blob)!.dataArray() ?? new Uint8Array(0));
  return out;
}

function records(op: OperationInfo, r: fb.Response): { items: Uint8Array[]; next_cursor: string | null } {
  want(op, r, 'Records');
  const rec = r.result(recordsTable) as fb.Records;
  return { items: blobs(rec), next_cursor: (rec.nextCursor() as string | null) ?? null };
}

// An operation's result shape ("record:User") split once, not on every answer.
const shapes = new Map<string, [string, string]>();
function shapeOf(op: OperationInfo): [string, string] {
  let s = shapes.get(op.result);
  if (s === undefined) {
    const [kind, type] = op.result.split(':');
    s = [kind, type];
    shapes.set(op.result, s);
  }
  return s;
}

export function decodeResult(op: OperationInfo, r: fb.Response): unknown {
  const [kind, type] = shapeOf(op);
  switch (kind) {
    case 'none':
      return undefined;
    case 'record': {
      want(op, r, 'Records');
      const rec = r.result(recordsTable) as fb.Records;
      if (rec.itemsLength() < 1) throw new AgentstoreError('protocol', 'expected one record', { op: op.name });
      return reader(op, type)(rec.items(0, blob)!.dataArray() ?? new Uint8Array(0));
    }
    case 'records': {
      const read = reader(op, type);
      return records(op, r).items.map(read);
    }
    case 'page': {
      const read = reader(op, type);
      const p = records(op, r);
      return { items: p.items.map(read), next_cursor: p.next_cursor };
    }
    case 'raw': {
      const p = records(op, r);
      return { items: p.items.map((b) => b.slice()), next_cursor: p.next_cursor };
    }
    case 'message_append': {
      const { items } = records(op, r);
      return { message: recordReaders.Message(items[0]), chat: recordReaders.Chat(items[1]) };
    }
    case 'track': {
      const { items } = records(op, r);
      return {
        user_agent: recordReaders.UserAgent(items[0]),
        log: recordReaders.UsageLog(items[1]),
        quotas: items.slice(2).map(recordReaders.Quota),
      };
    }
    case 'new_key': {
      want(op, r, 'NewKey');
      const k = r.result(new fb.NewKey()) as fb.NewKey;
      return { key: recordReaders.ApiKey(k.key(blob)!.dataArray()!), secret: k.secret() as string };
    }
    case 'hits': {
      want(op, r, 'MemoryHits');
      const h = r.result(new fb.MemoryHits()) as fb.MemoryHits;
      const items = blobs(h);
      return items.map((b, i) => ({
        memory: recordReaders.UserMemory(b), distance: h.distances(i)!, score: h.scores(i)!,
      }));
    }
    case 'status':
      want(op, r, 'StatusInfo');
      return decodeStatusInfo(r.result(new fb.StatusInfo()) as fb.StatusInfo);
    case 'auth':
      want(op, r, 'Authenticated');
      return decodeAuthenticated(r.result(new fb.Authenticated()) as fb.Authenticated);
    case 'summary':
      want(op, r, 'UsageSummaryResult');
      return decodeUsageSummaryResult(r.result(new fb.UsageSummaryResult()) as fb.UsageSummaryResult).rows;
    case 'limit':
      want(op, r, 'LimitAnswer');
      return decodeLimitAnswer(r.result(new fb.LimitAnswer()) as fb.LimitAnswer);
    case 'stream':
      // subscribe: where the subscription starts (its pushes go to Client.subscribe()).
      want(op, r, 'FeedPosition');
      return decodeFeedPosition(r.result(new fb.FeedPosition()) as fb.FeedPosition);
    case 'count':
      want(op, r, 'CountResult');
      return decodeCountResult(r.result(new fb.CountResult()) as fb.CountResult).value;
    case 'json':
    case 'json_page': {
      // Collections answer their records as JSON text (JsonRecords): one value, or a page.
      want(op, r, 'JsonRecords');
      const j = r.result(new fb.JsonRecords()) as fb.JsonRecords;
      const items: unknown[] = [];
      for (let i = 0; i < j.itemsLength(); i++) items.push(JSON.parse(j.items(i) as string));
      if (kind === 'json') return items[0] ?? null;
      return { items, next_cursor: (j.nextCursor() as string | null) ?? null };
    }
    default: {
      // An operation without a declared shape: the result union member by name, records raw.
      const tag = Object.keys(resultTags).find((k) => resultTags[k] === r.resultType());
      if (!tag) return undefined;
      if (tag === 'Records') return records(op, r);
      return { type: tag };
    }
  }
}

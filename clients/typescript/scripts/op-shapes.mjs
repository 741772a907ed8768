// What the op table does not declare: which Args union member(s) each operation takes
// and how its answer is shaped. Most follow from the name (<record>_create/get/update/
// delete/list); the rest mirror net/src/dispatch.cc's handlers. An operation matching
// neither still gets a method (any argument shape, the answer undecoded: "any"), so a
// newly declared op appears on regeneration before anyone writes a line here.

// Operation-name nouns that differ from the record table's snake_case name.
const NOUNS = { key: 'ApiKey', memory: 'UserMemory', usage: 'UsageLog', limit_config: 'RateLimitConfig' };

const OVERRIDES = {
  authenticate: [['AuthArgs'], 'auth'],
  status: [[], 'status'],
  tenant_get: [['IdArgs', 'KeyArgs'], 'record:Tenant'],
  user_get: [['IdArgs', 'KeyArgs'], 'record:User'],
  user_agent_get: [['IdArgs', 'PairArgs'], 'record:UserAgent'],
  user_agent_list: [['UserAgentListArgs'], 'records:UserAgent'],
  message_append: [['Message'], 'message_append'],
  vote_put: [['PairArgs'], 'record:Vote'],
  vote_list: [['IdArgs'], 'records:Vote'],
  admin_config_put: [['ConfigArgs'], 'record:AdminConfig'],
  admin_config_get: [['KeyArgs'], 'record:AdminConfig'],
  admin_config_list: [[], 'records:AdminConfig'],
  admin_config_delete: [['KeyArgs'], 'none'],
  key_create: [['ApiKey'], 'new_key'],
  key_list: [[], 'records:ApiKey'],
  key_revoke: [['IdArgs'], 'none'],
  record_export: [['ExportArgs'], 'raw'],
  record_import: [['ImportArgs'], 'none'],
  backup_create: [['BackupArgs'], 'none'],
  memory_upsert: [['UserMemory'], 'record:UserMemory'],
  memory_get: [['MemoryGetArgs'], 'record:UserMemory'],
  memory_search: [['MemorySearchArgs'], 'hits'],
  memory_hybrid_search: [['MemorySearchArgs'], 'hits'],
  memory_global_search: [['MemorySearchArgs'], 'hits'],
  memory_prune: [['MemoryPruneArgs'], 'count'],
  track_agent_usage: [['TrackUsageArgs'], 'track'],
  rate_agent: [['RateAgentArgs'], 'record:UserAgent'],
  usage_list: [['UsageListArgs'], 'page:UsageLog'],
  usage_summary: [['UsageSummaryArgs'], 'summary'],
  quota_set: [['Quota'], 'record:Quota'],
  quota_get: [['QuotaGetArgs'], 'records:Quota'],
  limit_config_put: [['RateLimitConfig'], 'record:RateLimitConfig'],
  limit_config_list: [[], 'records:RateLimitConfig'],
  limit_check: [['LimitCheckArgs'], 'limit'],
  limit_release: [['IdArgs'], 'none'],
  usage_expire: [[], 'count'],
  memory_graphs_save: [[], 'none'],
  // The change feed: push frames after the answer; Client.subscribe() (src/feed.ts) is the
  // method, so these get no generated one.
  subscribe: [['SubscribeArgs'], 'stream'],
  unsubscribe: [['UnsubscribeArgs'], 'none:stream'],
};

const snake = (s) => s.replace(/[A-Z]/g, (c, i) => (i ? '_' : '') + c.toLowerCase());

// -> { args: [Args member names], result: 'record:T' | 'page:T' | ... | 'any' }
export function opShape(name, tableNames, argNames) {
  if (OVERRIDES[name]) return { args: OVERRIDES[name][0], result: OVERRIDES[name][1] };
  const m = /^(.+)_(create|get|update|delete|list)$/.exec(name);
  if (m) {
    const table = NOUNS[m[1]] ?? [...tableNames].find((t) => snake(t) === m[1]);
    if (table) {
      switch (m[2]) {
        case 'create': if (argNames.includes(table)) return { args: [table], result: `record:${table}` }; break;
        case 'get': return { args: ['IdArgs'], result: `record:${table}` };
        case 'update': return { args: ['PatchArgs'], result: `record:${table}` };
        case 'delete': return { args: ['IdArgs'], result: 'none' };
        case 'list': return { args: ['PageArgs'], result: `page:${table}` };
      }
    }
  }
  return { args: argNames, result: 'any' };
}

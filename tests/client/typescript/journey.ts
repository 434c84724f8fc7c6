// An integrator's journey through the TypeScript client that @hey-api/openapi-ts generates from
// openapi/openapi.json. It must type-check under `strict` (so the contract gives generated types
// to what integrators read: the 409's `alternatives`, the anonymous rule) and then run against a
// live demo server. tests/client/test_typescript_client.py drives it; it prints one JSON summary.
import { createClient } from './gen/client';
import {
  createContactRequest,
  createResource,
  exportMyData,
  listAllies,
  listAuditEvents,
  updateResource,
} from './gen/sdk.gen';
import type {
  AnonymousContactRequestCreate,
  AuditEventPublic,
  ContactRequestCreate,
  ContactRequestProblem,
  MeExport,
  NamedContactRequestCreate,
} from './gen/types.gen';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const tokens: Record<string, string> = JSON.parse(env('TOKENS'));
const as = (who: string) =>
  createClient({ baseUrl: env('BASE'), auth: () => tokens[who] ?? '' });
const check = (condition: boolean, what: string): void => {
  if (!condition) throw new Error(`failed: ${what}`);
};
// The fetch client leaves `response` undefined only when the request never left.
const http = (result: { response?: Response }): Response => {
  if (!result.response) throw new Error('no response');
  return result.response;
};

// The anonymous rule survives generation: an anonymous request has no contact_detail.
const anonymous: AnonymousContactRequestCreate = {
  anonymous: true,
  topic: 'stress',
  message: 'Could we talk, without my name?',
};
// @ts-expect-error an anonymous request cannot carry a contact detail
const refused: AnonymousContactRequestCreate = { ...anonymous, contact_detail: 'x@example.com' };
void refused;

async function main(): Promise<void> {
  const summary: Record<string, unknown> = {};

  // ETag and If-Match on a coordinator-managed resource.
  const coordinator = as('coordinator');
  const created = await createResource({
    client: coordinator,
    body: { name: 'Staff counselling', category: 'professional', url: 'https://help.example' },
  });
  check(http(created).status === 201 && created.data !== undefined, 'resource created');
  const etag = http(created).headers.get('ETag');
  check(etag !== null, 'ETag on create');
  const id = created.data!.id;
  const updated = await updateResource({
    client: coordinator,
    path: { resource_id: id },
    headers: { 'If-Match': etag! },
    body: { hours: 'Mon-Fri 09:00-17:00' },
  });
  check(http(updated).status === 200, 'update with the current ETag');
  const stale = await updateResource({
    client: coordinator,
    path: { resource_id: id },
    headers: { 'If-Match': etag! },
    body: { hours: '24/7' },
  });
  check(http(stale).status === 412, 'a stale If-Match is a 412');
  summary.etag = { created: etag, stale_status: http(stale).status };

  // A full ally: the 409 carries typed alternatives.
  const directory = await listAllies({ client: as('employee-1'), query: { language: 'pt' } });
  const ana = directory.data?.items.find((ally) => ally.display_name === 'Ana Souza');
  check(ana !== undefined, 'Ana found by ?language=pt');
  let alternatives: string[] = [];
  for (const who of ['employee-1', 'employee-2', 'employee-3', 'employee-4']) {
    const body: NamedContactRequestCreate = {
      ally_id: ana!.id,
      topic: 'stress',
      message: 'Could we talk this week?',
    };
    const answer = await createContactRequest({ client: as(who), body });
    if (http(answer).status === 409) {
      const problem: ContactRequestProblem = answer.error as ContactRequestProblem;
      alternatives = (problem.alternatives ?? []).map((ally) => ally.display_name);
    } else {
      check(http(answer).status === 201, `request by ${who}`);
      check(http(answer).headers.get('Location') !== null, 'Location on create');
    }
  }
  check(alternatives.length > 0, 'the 409 named alternatives');
  summary.alternatives = alternatives;

  // The requester cap: a 429 that says when to retry.
  let retryAfter: string | null = null;
  for (let i = 0; i < 4; i++) {
    const body: ContactRequestCreate = i === 0 ? anonymous : { topic: 'workload', message: `Hello ${i}` };
    const answer = await createContactRequest({ client: as('employee-5'), body });
    if (http(answer).status === 429) retryAfter = http(answer).headers.get('Retry-After');
  }
  check(retryAfter !== null && Number(retryAfter) > 0, 'Retry-After on the 429');
  summary.retry_after = Number(retryAfter);

  // Availability: the demo allies' windows are 09:00-17:00 on weekdays, in their own zones.
  const tuesday = await listAllies({
    client: as('employee-1'),
    query: { available_at: '2026-12-01T12:00:00Z' },
  });
  const sunday = await listAllies({
    client: as('employee-1'),
    query: { available_at: '2026-12-06T12:00:00Z' },
  });
  check(http(tuesday).status === 200 && (tuesday.data?.items.length ?? 0) > 0, 'available Tuesday');
  check(http(sunday).status === 200 && sunday.data?.items.length === 0, 'nobody on Sunday');
  summary.available = { tuesday: tuesday.data?.items.length, sunday: sunday.data?.items.length };

  // The right of access: employee-5's own requests, typed by the contract.
  const exported = await exportMyData({ client: as('employee-5') });
  const document: MeExport | undefined = exported.data;
  check(http(exported).status === 200 && document !== undefined, 'export');
  check(document!.programme_feedback_included === false, 'programme feedback is not in it');
  summary.exported_requests = document!.requests.map((request) => request.message);

  // The audit trail holds the coordinator's resource changes, field names only.
  const trail = await listAuditEvents({ client: coordinator, query: { target_type: 'resource' } });
  const events: AuditEventPublic[] = trail.data?.items ?? [];
  summary.audit = events.map((event) => [event.action, event.changed]);

  console.log(JSON.stringify(summary));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

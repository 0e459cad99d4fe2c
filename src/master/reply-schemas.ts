import { Type, type Static, type TSchema } from '@fastify/type-provider-typebox';
import { ErrorReply } from '../common/http-errors.js';
import { ID_PATTERN } from '../common/ids.js';

// What the master's routes answer when they succeed, as the routes' `response` schemas: the
// OpenAPI document shows them, and Fastify serialises replies with them (fast-json-stringify).
// That serialiser DROPS what a schema does not name and COERCES what it types otherwise, so
// every shape here is what the handler really returns (views.ts, results-pager.ts…), and the
// public resources stay open (`additionalProperties: true`): a field added later is sent as
// it is. `WEIR_CHECK_REPLIES=1` (the integration harness sets it) compares every reply with
// its schema's serialisation (common/reply-check.ts).

/** `T` or null, as one JSON type list (fast-json-stringify serialises a union by validating each branch). */
const Nullable = <T extends TSchema>(t: T) => Type.Unsafe<Static<T> | null>({ ...t, type: [t.type as string, 'null'] });

/** One of `values` in the document; a string to TypeScript, as the views built from rows say. */
const Enum = (values: string[]) => Type.Unsafe<string>({ type: 'string', enum: values });

const Open = { additionalProperties: true } as const;
const Time = Type.String({ format: 'date-time', description: 'ISO-8601 UTC' });
const Id = Type.String({ pattern: ID_PATTERN.source });
const Count = Type.Integer({ minimum: 0 });
const Cursor = Nullable(Type.String({ description: 'pass as ?cursor= for the next page; null on the last' }));

const JobStatus = Enum(['pending', 'running', 'completed', 'failed', 'cancelled']);

const Progress = Type.Object({ total: Count, pending: Count, running: Count, completed: Count, failed: Count });

const Stage = Type.Object(
  {
    name: Type.String(),
    status: Type.String({ description: "the job's status for the stages it reached; 'waiting' after them" }),
    total: Count,
    pending: Count,
    running: Count,
    completed: Count,
    failed: Count,
  },
  { description: 'one stage of a multi-stage job (map, shuffle, reduce…)' },
);

/** Figures come from the worker's last heartbeat; 0 until one arrives. */
const Instance = Type.Object({
  index: Count,
  /** stopped: its job ended (cancelled, failed); unplaced: waiting for a worker with room. */
  status: Enum(['running', 'unplaced', 'stopped']),
  worker_id: Nullable(Type.String()),
  address: Nullable(Type.String()),
  in_per_s: Type.Number(),
  out_per_s: Type.Number(),
  events_in: Type.Number(),
  events_out: Type.Number(),
  queue_fill: Type.Number({
    description:
      "batches in the instance's inbox over the 64 its own worker may fill; each other worker's link may add 16 more, so it can pass 1",
  }),
  backpressure: Type.Boolean(),
  pending: Type.Number(),
  errors: Type.Number(),
});

const Component = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: '`spout/TYPE` or `bolt/OP`' }),
  parallelism: Type.Integer(),
  inputs: Type.Optional(Type.Array(Type.Object({ from: Type.String(), grouping: Type.String() }))),
  instances: Type.Array(Instance),
});

/** A failed job's first fatal error; `stack` and more (`name`, `code`, `attempts`) when known. */
const JobError = Type.Object(
  { task: Type.Optional(Type.Integer()), message: Type.String(), stack: Type.Optional(Type.String()) },
  Open,
);

/** A job as `GET /api/jobs/{job_id}` shows it (views.ts `jobView`). */
/**
 * An array, left untyped here on purpose: fast-json-stringify serialises `{type: 'array',
 * items: {}}` item by item (10,000 numbers 5–10× slower than one JSON.stringify); untyped, it
 * hands the whole page to JSON.stringify.
 */
const ResultRows = Type.Unsafe<unknown[]>({
  description:
    'an array: numbers in input order (multiply, noop, sleep), rows {key, value} sorted by key, or a stream’s rows',
});

export const JobReply = Type.Object(
  {
    job_id: Id,
    name: Type.String(),
    type: Enum(['batch', 'streaming']),
    status: JobStatus,
    operation: Type.Optional(Type.String({ description: "a batch job's operation; absent for streaming jobs" })),
    progress: Progress,
    // Never null (every job has one), but the view's helper says string | null.
    created_at: Type.Unsafe<string | null>(Time),
    started_at: Nullable(Time),
    finished_at: Nullable(Time),
    stages: Type.Optional(Type.Array(Stage)),
    components: Type.Optional(Type.Array(Component, { description: "a streaming job's spouts and bolts" })),
    output: Type.Optional(
      Type.Object(
        { path: Type.String(), parts: Type.Array(Type.Unknown()) },
        { description: 'the part files a completed job wrote to `config.output`' },
      ),
    ),
    error: Type.Optional(JobError),
    results_page: Type.Optional(
      Type.Object(
        { results: ResultRows, next_cursor: Cursor },
        {
          description:
            'asked for with ?results_limit=N, of a completed batch job: its first N results, as GET /api/jobs/{job_id}/results?limit=N gives them',
        },
      ),
    ),
  },
  { ...Open, description: 'a job; stages, components and the job’s full view only from GET /api/jobs/{job_id}' },
);

export const JobsReply = Type.Object(
  { jobs: Type.Array(JobReply), next_cursor: Cursor },
  { description: 'a page of jobs, newest first' },
);

export const TasksReply = Type.Object(
  {
    tasks: Type.Array(
      Type.Object(
        {
          idx: Count,
          status: Type.String(),
          attempt: Count,
          failures: Type.Integer({ minimum: 0, description: 'failed attempts, counted against max_retries' }),
          losses: Type.Integer({
            minimum: 0,
            description: 'workers lost while they ran it; the task fails at 3 (a worker lost is no failure)',
          }),
          worker_id: Nullable(Type.String()),
          started_at: Nullable(Time),
          finished_at: Nullable(Time),
          error: Type.Optional(Type.Unknown({ description: "the attempt's error as its executor reported it" })),
        },
        Open,
      ),
    ),
  },
  { description: "the job's tasks by index, with their latest attempt" },
);

export const ResultsReply = Type.Object(
  {
    results: ResultRows,
    next_cursor: Cursor,
    follow_cursor: Type.Optional(
      Type.String({ description: 'streaming jobs: where to ask from next time, even with nothing more yet' }),
    ),
  },
  { description: 'a page of results' },
);

/** No body (`type: 'null'` is how the document says so). */
export const DeletedReply = Type.Unsafe<undefined>({
  type: 'null',
  description: 'deleted: the job and everything it left are gone',
});

export const UploadDeletedReply = Type.Unsafe<undefined>({
  type: 'null',
  description: 'deleted: no job may read the upload from now on, and every master removes its copy',
});

export const AcceptedReply = Type.Object(
  { accepted: Count },
  { description: 'the events are safe: processed by the topology, or stored where a replay finds them' },
);

/** A refusal a route names on its own, to say when it comes (the 4xx/5xx entries cover the rest). */
const refusal = (description: string) => Type.Object(ErrorReply.properties, { description });

export const SaturatedReply = refusal(
  'the topology is saturated (after waiting up to 5 s): send the events again after Retry-After',
);

export const RangeRefusedReply = refusal('the range is not within the upload (Content-Range: bytes */SIZE)');

export const StoredReply = Type.Object({ stored: Count }, { description: 'the rows are committed' });

export const RegisteredReply = Type.Object(
  {
    worker_id: Id,
    heartbeat_interval_ms: Type.Integer(),
    heartbeat_timeout_ms: Type.Integer(),
  },
  { description: 'registered: open the channel and heartbeat at this interval' },
);

export const HeartbeatReply = Type.Object(
  {
    ok: Type.Boolean(),
    status: Type.String({ description: "the worker's status in the cluster's state: active or draining" }),
  },
  { description: 'heard' },
);

/** A worker as `GET /api/workers` lists it (views.ts `workerView`). */
const WorkerReply = Type.Object(
  {
    worker_id: Id,
    address: Type.String(),
    status: Enum(['active', 'draining', 'dead']),
    max_tasks: Type.Integer(),
    active_tasks: Count,
    last_heartbeat: Nullable(Time),
    registered_at: Nullable(Time),
    dead_at: Type.Optional(Nullable(Time)),
    metrics: Type.Optional(
      Type.Object({}, { ...Open, description: 'what the worker reported in its last heartbeat (live workers)' }),
    ),
  },
  Open,
);

export const WorkersReply = Type.Object(
  { workers: Type.Array(WorkerReply), next_cursor: Cursor },
  { description: 'a page of workers, oldest registration first' },
);

/** A socket route's only success: the upgrade. */
export const SocketReply = Type.Unsafe<undefined>({
  type: 'null',
  description: 'Switching Protocols: a WebSocket of msgpack frames',
});

export const MemberAddedReply = Type.Object(
  {
    id: Type.Integer(),
    address: Type.String(),
    role: Type.Literal('learner'),
  },
  { description: 'added as a learner; promoted once caught up' },
);

export const MemberRemovedReply = Type.Object({ removed: Type.Integer() }, { description: 'removed from the cluster' });

const Role = Enum(['leader', 'follower', 'candidate', 'learner']);
const Alarms = Type.Array(Type.String(), { description: '`["no_space"]` while writes that add data are refused' });

/** The seed's shape, plus the Raft figures (answered by the node itself). */
export const ClusterStatusReply = Type.Object(
  {
    current_node_id: Type.Integer(),
    current_role: Role,
    leader_id: Nullable(Type.Integer()),
    leader_address: Nullable(Type.String()),
    total_nodes: Count,
    nodes: Type.Array(
      Type.Object({
        id: Type.Integer(),
        address: Type.String(),
        role: Role,
        is_leader: Type.Boolean(),
        healthy: Type.Boolean({ description: 'this node heard from that one within 2 s (always true for itself)' }),
      }),
    ),
    term: Count,
    commit_index: Count,
    last_applied: Count,
    rules_version: Type.Integer({
      minimum: 1,
      description:
        'the rules this node’s state applies commands by; the leader moves them on once every member knows newer ones',
    }),
    alarms: Alarms,
  },
  { ...Open, description: 'this node’s view of the cluster' },
);

export const HealthReply = Type.Object(
  { status: Type.Literal('ok'), alarms: Alarms },
  { description: 'alive; its own alarms' },
);

/** Every master as it reports itself; `error` instead of its figures when it could not be reached. */
export const MastersReply = Type.Object(
  {
    masters: Type.Array(
      Type.Object({
        id: Type.Integer(),
        address: Type.String(),
        role: Type.String(),
        is_leader: Type.Boolean(),
        healthy: Type.Boolean(),
        term: Type.Optional(Count),
        commit_index: Type.Optional(Count),
        last_applied: Type.Optional(Count),
        alarms: Type.Optional(Alarms),
        error: Type.Optional(Type.String()),
      }),
    ),
  },
  { description: 'every master’s figures, as it reports them' },
);

export const UploadReply = Type.Object(
  {
    upload_id: Type.String(),
    bytes: Count,
    copies: Count,
    url: Type.String({ description: 'what `config.input.url` names to read it' }),
  },
  { description: 'stored on a majority of masters' },
);

export const UploadCopyReply = Type.Object(
  { upload_id: Type.String(), bytes: Count },
  { description: 'this master holds the copy' },
);

/**
 * A reply that is not JSON: its media type and what it holds. Fastify picks a serialiser by
 * content type, and sends strings, Buffers and streams as they are.
 */
export const rawReply = (mediaType: string, description: string, headers?: Record<string, TSchema>) => ({
  description,
  content: { [mediaType]: { schema: Type.String(mediaType.startsWith('text/') ? {} : { format: 'binary' }) } },
  ...(headers ? { headers } : {}),
});

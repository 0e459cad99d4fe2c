import type { FastifyPluginAsync } from 'fastify';
import { request, type Dispatcher } from 'undici';
import type { MasterContext } from '../context.js';
import { MastersReply } from '../reply-schemas.js';

/** How long a master has to tell its figures before the view says it could not be reached. */
const ASK_TIMEOUT_MS = 800;
/** Dashboards poll every second; however many are open, the masters are asked once in this. */
const REUSE_MS = 500;

interface SelfReport {
  current_role: string;
  term: number;
  commit_index: number;
  last_applied: number;
  alarms?: string[];
}

/**
 * Every master's figures as it reports them itself (role, term, commit and applied index,
 * alarms: its /cluster/status), gathered by the master asked: a browser may not ask the others (another origin).
 * What only the asked master knows (membership, health) is its view.
 */
export function mastersRoutes(ctx: MasterContext, dispatcher?: Dispatcher): FastifyPluginAsync {
  const { consensus } = ctx;

  const ask = async (address: string): Promise<SelfReport> => {
    const auth = await ctx.tokens.header();
    const res = await request(`${address}/cluster/status`, {
      headers: auth ? { authorization: auth } : {},
      headersTimeout: ASK_TIMEOUT_MS,
      bodyTimeout: ASK_TIMEOUT_MS,
      signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
      ...(dispatcher ? { dispatcher } : {}),
    });
    const body = (await res.body.json()) as SelfReport;
    if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}`);
    return body;
  };

  const gather = async () => {
    const s = consensus.status();
    const masters = await Promise.all(
      s.members.map(async (m) => {
        const seen = {
          id: m.id,
          address: m.address,
          role: m.role,
          is_leader: m.id === s.leader_id,
          healthy: m.healthy,
        };
        // This master's own figures are at hand: asking itself over HTTP would cost a
        // request, a token and a JSON round on every poll of every open dashboard.
        if (m.id === s.node_id) {
          const alarms = ctx.space.alarms();
          return {
            ...seen,
            role: s.role,
            term: s.term,
            commit_index: s.commit_index,
            last_applied: s.last_applied,
            alarms,
          };
        }
        try {
          const r = await ask(m.address);
          return {
            ...seen,
            role: r.current_role,
            term: r.term,
            commit_index: r.commit_index,
            last_applied: r.last_applied,
            ...(r.alarms ? { alarms: r.alarms } : {}),
          };
        } catch (err) {
          return { ...seen, healthy: false, error: `not reached: ${(err as Error).message}` };
        }
      }),
    );
    return { masters };
  };

  let last: { at: number; view: ReturnType<typeof gather> } | undefined;
  return async (app) => {
    app.get('/cluster/masters', { schema: { response: { 200: MastersReply } } }, async () => {
      const now = Date.now();
      if (!last || now - last.at > REUSE_MS) last = { at: now, view: gather() };
      return last.view;
    });
  };
}

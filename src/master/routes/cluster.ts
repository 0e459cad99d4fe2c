import { Type } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { MasterContext } from '../context.js';
import { ClusterStatusReply, HealthReply, rawReply } from '../reply-schemas.js';

/** Whether this master can serve: it knows a leader and has applied what it committed. */
const ReadyReply = Type.Object(
  {
    ready: Type.Boolean(),
    role: Type.String(),
    leader_id: Type.Union([Type.Integer(), Type.Null()]),
  },
  { description: 'ready (200) or not yet (503): it knows a leader and has applied what it committed' },
);

const Status = { response: { 200: ClusterStatusReply } };
const Health = { response: { 200: HealthReply } };
const Metrics = { response: { 200: rawReply('text/plain', 'Prometheus text format (version 0.0.4)') } };

/** Routes every master answers itself: cluster view (with a token), health and metrics (open). */
export function clusterRoutes(ctx: MasterContext): FastifyPluginAsync {
  const { consensus, metrics, space, queries } = ctx;
  return async (app) => {
    app.get('/cluster/status', { schema: Status }, async () => {
      const s = consensus.status();
      return {
        current_node_id: s.node_id,
        current_role: s.role,
        leader_id: s.leader_id,
        leader_address: s.leader_address,
        total_nodes: s.members.length,
        nodes: s.members.map((m) => ({
          id: m.id,
          address: m.address,
          role: m.role,
          is_leader: m.id === s.leader_id,
          healthy: m.healthy,
        })),
        term: s.term,
        commit_index: s.commit_index,
        last_applied: s.last_applied,
        rules_version: queries.rulesVersion(),
        // `["no_space"]` while this master refuses writes that add data (its own, or a voter's on the leader).
        alarms: space.alarms(),
      };
    });

    // The leader reads its voters' alarms here (peer-alarms.ts): their own, never what they heard.
    app.get('/health', { schema: Health }, async () => ({ status: 'ok', alarms: space.ownAlarms() }));

    app.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_req, reply) => {
      const s = consensus.status();
      const ready = s.leader_id !== null && s.caught_up;
      return reply.code(ready ? 200 : 503).send({ ready, role: s.role, leader_id: s.leader_id });
    });

    app.get('/metrics', { schema: Metrics }, async (_req, reply) => {
      const body = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(body);
    });
  };
}

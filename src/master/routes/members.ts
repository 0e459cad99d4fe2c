import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { MasterContext } from '../context.js';
import { MemberAddedReply, MemberRemovedReply } from '../reply-schemas.js';

const MemberBody = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 }),
  address: Type.String({ pattern: '^https?://[^/\\s]+$', maxLength: 300 }),
});

const Add = { body: MemberBody, response: { 201: MemberAddedReply } };
const Remove = { params: Type.Object({ id: Type.Integer({ minimum: 1 }) }), response: { 200: MemberRemovedReply } };

/** Membership of the masters: a new master asks to join; an operator removes one. */
export function clusterMemberRoutes(ctx: MasterContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post('/cluster/members', { schema: Add }, async (req, reply) => {
      await ctx.consensus.addMember(req.body.id, req.body.address);
      ctx.log.info({ id: req.body.id, address: req.body.address }, 'master added as a learner');
      return reply.code(201).send({ id: req.body.id, address: req.body.address, role: 'learner' });
    });

    app.delete('/cluster/members/:id', { schema: Remove }, async (req) => {
      await ctx.consensus.removeMember(req.params.id);
      ctx.log.info({ id: req.params.id }, 'master removed from the cluster');
      return { removed: req.params.id };
    });
  };
}

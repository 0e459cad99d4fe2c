// A delete goes on while the disk is full: one whose log write the full disk refused is
// proposed again once the master leads again (it gave its reserve up for it).
import { describe, expect, it } from 'vitest';
import { WeirError, noSpace } from '../../src/common/errors.js';
import { commitFreeing, type ClusterConsensus } from '../../src/master/cluster-log.js';
import type { Command } from '../../src/state/commands.js';

/** A consensus whose proposals answer as `answers` say, in turn; leading again after `leadsAfterMs`. */
function consensusAnswering(answers: (object | Error)[], leadsAfterMs = 0) {
  const proposed: Command[] = [];
  const since = Date.now();
  const consensus = {
    isLeader: () => Date.now() - since >= leadsAfterMs,
    propose: async (command: Command) => {
      proposed.push(command);
      const a = answers.shift()!;
      if (a instanceof Error) throw a;
      return a;
    },
  } as unknown as ClusterConsensus;
  return { consensus, proposed };
}
const del = { type: 'deleteJob' as const, at: 1, job_id: 'j' };

describe('a delete refused by a full disk', () => {
  it('is proposed again, with a time of its own, once the master leads again', async () => {
    const { consensus, proposed } = consensusAnswering(
      [noSpace("this master's disk is full"), { ok: true, to_stop: [], seq: 1, more: false }],
      100,
    );
    await commitFreeing(consensus, del);
    expect(proposed).toHaveLength(2);
    expect(proposed[1]).toMatchObject({ type: 'deleteJob', job_id: 'j' });
    expect((proposed[1] as typeof del).at).toBeGreaterThan(1);
  });

  it('goes for an upload’s delete too', async () => {
    const { consensus, proposed } = consensusAnswering([noSpace('full'), { ok: true }]);
    await commitFreeing(consensus, { type: 'forgetUpload', at: 1, upload_id: `up_${'a'.repeat(44)}` });
    expect(proposed.map((c) => c.type)).toEqual(['forgetUpload', 'forgetUpload']);
  });

  it('is done when the first was applied after all (the second finds no job)', async () => {
    const { consensus } = consensusAnswering([
      noSpace('full'),
      { ok: false, code: 'not_found', message: "no job with id 'j'" },
    ]);
    await expect(commitFreeing(consensus, del)).resolves.toBeUndefined();
  });

  it('is refused as it was when the disk refuses again, and any other error is not retried', async () => {
    const twice = consensusAnswering([noSpace('full'), noSpace('still full')]);
    await expect(commitFreeing(twice.consensus, del)).rejects.toMatchObject({ code: 'no_space' });
    const other = consensusAnswering([new WeirError('no_leader', 'an election')]);
    await expect(commitFreeing(other.consensus, del)).rejects.toMatchObject({ code: 'no_leader' });
    expect(other.proposed).toHaveLength(1);
  });
});

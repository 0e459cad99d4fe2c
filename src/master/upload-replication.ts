import { createReadStream } from 'node:fs';
import { request, type Dispatcher } from 'undici';
import type { TokenSource } from '../common/auth.js';
import { WeirError, noSpace } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { MemberInfo } from '../consensus/consensus.js';
import { UPLOADS_PATH } from './forwarding.js';
import type { ClusterConsensus } from './cluster-log.js';

/** Who else gets a copy of an upload, and how many voting masters must hold one first. */
export interface CopyPlan {
  /** Every other master, voters first. */
  peers: { url: string; voter: boolean }[];
  /** Copies on voters, this master's included, before the upload is acknowledged. */
  needed: number;
  /** Whether this master's own copy counts toward `needed` (a learner's does not). */
  selfVotes: boolean;
}

/**
 * An upload is acknowledged once a majority of the voting masters hold it, as a log entry
 * is: any majority that elects a leader later includes one of them, so losing a minority
 * never loses an upload. Pure.
 */
export function copyPlan(members: readonly MemberInfo[], selfUrl: string): CopyPlan {
  const voters = members.filter((m) => m.voter);
  const self = members.find((m) => m.address === selfUrl);
  const peers = members
    .filter((m) => m.address !== selfUrl)
    .map((m) => ({ url: m.address, voter: m.voter }))
    .sort((a, b) => Number(b.voter) - Number(a.voter));
  return {
    peers,
    // A master that knows no configuration yet stands alone.
    needed: voters.length === 0 ? 1 : Math.floor(voters.length / 2) + 1,
    selfVotes: voters.length === 0 || self?.voter === true,
  };
}

/**
 * Copies uploads to the other masters (`PUT /api/uploads/ID`), so that a job's input
 * outlives the master that received it: workers read it from any master that holds it.
 */
export class UploadReplicator {
  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly selfUrl: string,
    private readonly tokens: TokenSource,
    private readonly log: Logger,
    /** One that speaks TLS to the other masters, when they serve it. */
    private readonly dispatcher?: Dispatcher,
  ) {}

  /**
   * Resolves with the number of masters holding the upload once a majority of voters do;
   * copies to the rest go on in the background. Rejects when too many masters refuse or
   * cannot be reached for a majority to hold it.
   */
  replicate(id: string, path: string, bytes: number): Promise<number> {
    const plan = copyPlan(this.consensus.status().members, this.selfUrl);
    let votes = plan.selfVotes ? 1 : 0;
    let copies = 1;
    let votersLeft = plan.peers.filter((p) => p.voter).length;
    const failures: string[] = [];
    let fullPeers = 0;
    return new Promise((resolve, reject) => {
      const settle = () => {
        if (votes >= plan.needed) resolve(copies);
        else if (votes + votersLeft < plan.needed && fullPeers > 0) {
          // Too little room on the masters is the client's to know: it is not worth a retry.
          reject(noSpace(`the upload could not reach a majority of masters: ${failures.join('; ')}`));
        } else if (votes + votersLeft < plan.needed) {
          reject(
            new WeirError(
              'unavailable',
              `the upload reached ${votes} of the ${plan.needed} masters that must hold it before it is accepted (${failures.join('; ')}); retry when more masters are up`,
            ),
          );
        }
      };
      settle();
      for (const peer of plan.peers) {
        this.copyTo(peer.url, id, path, bytes).then(
          () => {
            copies++;
            if (peer.voter) {
              votes++;
              votersLeft--;
            }
            settle();
          },
          (err: Error) => {
            failures.push(`${peer.url}: ${err.message}`);
            if (err instanceof WeirError && err.code === 'no_space') fullPeers++;
            this.log.warn({ err: err.message, upload_id: id, peer: peer.url }, 'could not copy an upload');
            if (peer.voter) votersLeft--;
            settle();
          },
        );
      }
    });
  }

  private async copyTo(peer: string, id: string, path: string, bytes: number): Promise<void> {
    const auth = await this.tokens.header();
    const res = await request(`${peer}${UPLOADS_PATH}/${id}`, {
      method: 'PUT',
      body: createReadStream(path),
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes),
        ...(auth ? { authorization: auth } : {}),
      },
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
      ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
    });
    const text = await res.body.text();
    if (res.statusCode === 507) throw new WeirError('no_space', `its disk is full (507 ${text.slice(0, 200)})`);
    if (res.statusCode !== 200 && res.statusCode !== 201) {
      throw new Error(`answered ${res.statusCode} ${text.slice(0, 200)}`);
    }
  }
}

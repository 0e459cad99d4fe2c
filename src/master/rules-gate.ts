import { AtMostEvery } from '../common/at-most-every.js';
import type { Logger } from '../common/logger.js';
import { aheadOfUs, behindRules, FIRST_RULES, nextRules, RULES_VERSION } from '../state/rules.js';
import type { ClusterConsensus } from './cluster-log.js';

/** How often a leader looks for rules every member knows (a rolling upgrade's last step waits this long). */
export const RULES_CHECK_MS = 1_000;

/** What the gate asks of the peers' links: the rules each member announced (peer-transport.ts). */
export interface AnnouncedRules {
  announcedRules(peer: number): number | undefined;
  /** How the links tell a peer that may follow the log from one that may not. */
  judgeRulesBy(judge: (peer: number, announced: number | undefined) => string | undefined): void;
  /** That judgement of `peer` now ('': it has not linked yet, so has said nothing). */
  cannotFollow(peer: number): string | undefined;
  /** Whether `peer` has a link open to this master now. */
  linked(peer: number): boolean;
}

/**
 * Moves the cluster to newer rules of applying commands (state/rules.ts) once every member,
 * learners too, has announced that it knows them: the leader proposes a SetRules entry. Until
 * then a rolling upgrade's masters all apply by the rules the oldest of them knows. A member
 * that announces older rules than the cluster applies afterwards (a master restarted on an
 * older Weir) is sent no entries of the log until it is upgraded (see `judge`).
 */
export class RulesGate {
  private timer: NodeJS.Timeout | undefined;
  private proposing = false;
  private readonly warnings = new AtMostEvery(60_000);

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly state: { rulesVersion(): number },
    private readonly peers: AnnouncedRules,
    private readonly log: Logger,
    /** The rules this master knows; tests give another. */
    private readonly known = RULES_VERSION,
  ) {}

  /** Checks every RULES_CHECK_MS from now on, and judges the peers' rules for the log's replication. */
  start(): void {
    this.peers.judgeRulesBy((peer, announced) => this.judge(peer, announced));
    this.timer ??= setInterval(() => void this.check(), RULES_CHECK_MS);
    this.timer.unref();
  }

  /**
   * Why `peer` may not be sent entries of the log: it knows older rules than the state applies.
   * Asked for every append a leader sends: one that announced all this master knows is let
   * through without a read of the state.
   */
  judge(peer: number, announced: number | undefined): string | undefined {
    if (announced !== undefined && announced >= this.known) return undefined;
    return behindRules(peer, announced, this.state.rulesVersion());
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * On every master: says so if the state follows rules newer than this Weir knows. On the
   * leader: proposes the rules every member knows, if newer than the state's.
   */
  async check(): Promise<void> {
    const current = this.state.rulesVersion();
    const ahead = aheadOfUs(current, this.known);
    if (ahead) this.warnings.say(() => this.log.error(ahead), 'ahead');
    if (this.proposing || !this.consensus.isLeader()) return;
    const status = this.consensus.status();
    const others = status.members.filter((m) => m.id !== status.node_id);
    const announced = others.map((m) => this.peers.announcedRules(m.id));
    const next = nextRules(current, this.known, announced);
    const applies = next ?? current;
    const allLinked = others.every((m) => this.peers.linked(m.id));
    others.forEach((m, i) => {
      // Behind the rules the state applies already: the log's replication holds it back.
      const behind = this.peers.cannotFollow(m.id);
      if (behind) return this.warnings.say(() => this.log.warn(behind), `behind ${m.id}`);
      // A rolling upgrade under way: what the newest rules wait for — said once every member
      // has linked (one not linked yet has said nothing, and holds them back without a word).
      const knows = announced[i] ?? FIRST_RULES;
      if (allLinked && knows < this.known && knows >= applies) {
        this.warnings.say(
          () =>
            this.log.info(
              { member: m.id, knows, rules: applies },
              `master ${m.id} knows the rules up to version ${knows}: the cluster applies version ${applies} until every master knows version ${this.known}`,
            ),
          `waiting ${m.id}`,
        );
      }
    });
    if (next === undefined) return;
    this.proposing = true;
    try {
      const r = await this.consensus.propose({ type: 'setRules', at: Date.now(), version: next });
      if (r.ok)
        this.log.info(
          { rules: r.version, was: current },
          'every master knows newer rules: the cluster applies them from now on',
        );
    } catch (err) {
      // Not leading any more, or the log refused the write: the next check (here or on the
      // next leader) proposes it again.
      this.log.debug({ err: (err as Error).message }, 'could not move the cluster to newer rules yet');
    } finally {
      this.proposing = false;
    }
  }
}

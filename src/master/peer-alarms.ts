import { request, type Dispatcher } from 'undici';
import type { Logger } from '../common/logger.js';
import type { ClusterConsensus } from './cluster-log.js';
import { CHECK_EVERY_MS, NO_SPACE } from './space-monitor.js';

/** A voter's alarms count this long after it last told them: a silent master stops no write. */
const FRESH_MS = 3 * CHECK_EVERY_MS;
const ASK_TIMEOUT_MS = 900;

/**
 * The leader's view of the other voters' alarms, asked of their `/health` once a second.
 * Every master holds the same state, so a write the leader takes lands on each voter's disk
 * too: a voter whose disk is full stops the writes that add data, cluster-wide, as etcd's
 * NOSPACE alarm does. (etcd passes its alarm through the log; an alarm here is measured
 * again every second, so it need not be durable, and a voter that cannot be reached — or
 * has no alarms field, being older — stops nothing.)
 */
export class PeerAlarms {
  private readonly seen = new Map<string, { alarms: string[]; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private asking = false;

  constructor(
    private readonly consensus: ClusterConsensus,
    private readonly selfUrl: string,
    private readonly log: Logger,
    /** One that speaks TLS to the other masters, when they serve it. */
    private readonly dispatcher?: Dispatcher,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.ask(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  /** Why a voter's alarm stops writes here (only while this master leads). */
  reason(): string | undefined {
    if (!this.consensus.isLeader()) return undefined;
    const now = Date.now();
    const voters = new Set(
      this.consensus
        .status()
        .members.filter((m) => m.voter)
        .map((m) => m.address),
    );
    for (const [url, s] of this.seen) {
      if (voters.has(url) && now - s.at <= FRESH_MS && s.alarms.includes(NO_SPACE)) {
        return `the master at ${url} has its no_space alarm on (its disk is short of space, and every write lands there too)`;
      }
    }
    return undefined;
  }

  private async ask(): Promise<void> {
    if (this.asking) return;
    if (!this.consensus.isLeader()) {
      this.seen.clear();
      return;
    }
    this.asking = true;
    try {
      const peers = this.consensus
        .status()
        .members.filter((m) => m.voter && m.address !== this.selfUrl)
        .map((m) => m.address);
      await Promise.all(peers.map((url) => this.askOne(url)));
    } finally {
      this.asking = false;
    }
  }

  private async askOne(url: string): Promise<void> {
    try {
      const res = await request(`${url}/health`, {
        headersTimeout: ASK_TIMEOUT_MS,
        bodyTimeout: ASK_TIMEOUT_MS,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
      const body = (await res.body.json()) as { alarms?: unknown };
      const alarms = Array.isArray(body.alarms) ? body.alarms.filter((a): a is string => typeof a === 'string') : [];
      const was = this.seen.get(url)?.alarms.includes(NO_SPACE) ?? false;
      if (alarms.includes(NO_SPACE) !== was) {
        this.log.warn({ master: url, alarms }, 'a voter’s no_space alarm changed: writes that add data follow it');
      }
      this.seen.set(url, { alarms, at: Date.now() });
    } catch {
      // Unreachable now: its last answer ages out (FRESH_MS).
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

import { freePorts, type Cluster, type MasterProc } from './cluster.js';

/**
 * A cluster's masters, each stopped and started again on its own data dir and port as a spec
 * needs (killed, upgraded to another build, restarted): a spec's `masters` map stays current.
 */
export class MastersOnDisk {
  readonly procs = new Map<number, MasterProc>();
  private ports: number[] = [];
  /** Every master's URL, as `--peers` takes them. */
  peers = '';

  constructor(
    private readonly c: Cluster,
    private readonly hosts: readonly string[],
    private readonly ids: readonly number[],
    private readonly flags: readonly string[],
  ) {}

  /** Picks the ports (once, before the first start). */
  async init(): Promise<void> {
    this.ports = await freePorts(this.hosts);
    this.peers = this.hosts.map((h, i) => `http://${h}:${this.ports[i]}`).join(',');
  }

  /** Starts master `id` (again, on its data dir, if it ran before); `bin`: another build. */
  async start(id: number, o: { wait?: boolean; bin?: string } = {}): Promise<MasterProc> {
    const i = this.ids.indexOf(id);
    const old = this.procs.get(id);
    const m = await this.c.master(this.hosts[i]!, {
      port: this.ports[i]!,
      args: ['--peers', this.peers, ...this.flags],
      ...(old ? { dataDir: old.dataDir } : {}),
      ...(o.bin ? { bin: o.bin } : {}),
      wait: o.wait ?? true,
    });
    this.procs.set(id, m);
    return m;
  }

  /** The masters running now (one may be down on purpose). */
  running(): MasterProc[] {
    return [...this.procs.values()].filter((m) => m.exitCode === undefined);
  }

  urls(): string[] {
    return this.running().map((m) => m.url);
  }
}

import { cpus } from 'node:os';

/** Performance figures a worker reports with each heartbeat and on /api/status. */
export class WorkerStats {
  tasksDone = 0;
  tasksFailed = 0;
  private totalTaskMs = 0;
  private lastAt = Date.now();
  private lastDone = 0;
  private lastCpu = process.cpuUsage();
  private readonly startedAt = Date.now();

  taskDone(ms: number): void {
    this.tasksDone++;
    this.totalTaskMs += ms;
  }

  taskFailed(): void {
    this.tasksFailed++;
  }

  /** Totals since start, without moving the rate window. */
  totals(): Record<string, number> {
    const mem = process.memoryUsage();
    return {
      tasks_done: this.tasksDone,
      tasks_failed: this.tasksFailed,
      avg_task_ms: this.tasksDone ? Math.round((this.totalTaskMs / this.tasksDone) * 100) / 100 : 0,
      memory_rss_mb: Math.round(mem.rss / 1048576),
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  /** Figures since the previous snapshot (rates) and since start (totals). */
  snapshot(): Record<string, number> {
    const now = Date.now();
    const elapsedS = Math.max(0.001, (now - this.lastAt) / 1000);
    const cpu = process.cpuUsage(this.lastCpu);
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / (elapsedS * 1000)) * 100;
    const rate = (this.tasksDone - this.lastDone) / elapsedS;
    this.lastAt = now;
    this.lastDone = this.tasksDone;
    this.lastCpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return {
      cpu_percent: Math.round(cpuPercent * 10) / 10,
      cpu_count: cpus().length,
      memory_rss_mb: Math.round(mem.rss / 1048576),
      heap_used_mb: Math.round(mem.heapUsed / 1048576),
      tasks_done: this.tasksDone,
      tasks_failed: this.tasksFailed,
      task_rate: Math.round(rate * 10) / 10,
      avg_task_ms: this.tasksDone ? Math.round((this.totalTaskMs / this.tasksDone) * 100) / 100 : 0,
      uptime_s: Math.round((now - this.startedAt) / 1000),
    };
  }
}

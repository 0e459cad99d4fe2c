import type { IntervalHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, type Metric, type Registry } from 'prom-client';

/** What a registry asks of a metric it prints: its figures at scrape time. */
interface ScrapedMetric {
  name: string;
  help: string;
  type: 'summary';
  aggregator: 'sum';
  get(): Promise<Scraped>;
}

interface Scraped {
  name: string;
  help: string;
  type: 'summary';
  aggregator: 'sum';
  values: { labels: Record<string, string>; value: number; metricName?: string }[];
}

const register = (registry: Registry, m: ScrapedMetric): void => registry.registerMetric(m as unknown as Metric);

/**
 * prom-client's default process metrics, as Prometheus wants them: beside each of its
 * `nodejs_active_{handles,requests,resources}` gauges it registers a copy named `…_total`, a
 * suffix kept for counters, which `promtool check metrics` refuses; the copies go.
 */
export function nodeMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const base of ['nodejs_active_handles', 'nodejs_active_requests', 'nodejs_active_resources']) {
    registry.removeSingleMetric(`${prefix}${base}_total`);
  }
}

/**
 * The event loop's delay as a Prometheus summary: quantiles over the time since the last
 * scrape (a long delay holds back heartbeats and elections), with a running sum and count.
 */
export function eventLoopDelaySummary(registry: Registry, name: string, loop: IntervalHistogram): void {
  const help = 'Event loop delay: quantiles since the last scrape; long delays hold back heartbeats and elections';
  let sum = 0;
  let count = 0;
  register(registry, {
    name,
    help,
    type: 'summary',
    aggregator: 'sum',
    get: async () => {
      const seconds = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
      const values: Scraped['values'] = [
        { labels: { quantile: '0.5' }, value: seconds(loop.percentile(50)) },
        { labels: { quantile: '0.99' }, value: seconds(loop.percentile(99)) },
        { labels: { quantile: '1' }, value: seconds(loop.max) },
      ];
      sum += seconds(loop.mean) * loop.count;
      count += loop.count;
      loop.reset();
      values.push({ metricName: `${name}_sum`, labels: {}, value: sum });
      values.push({ metricName: `${name}_count`, labels: {}, value: count });
      return { name, help, type: 'summary', aggregator: 'sum', values };
    },
  });
}

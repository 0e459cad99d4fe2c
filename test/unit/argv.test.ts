import { describe, expect, it } from 'vitest';
import { nodeIdFromIpv4, normalizeUrl } from '../../src/common/address.js';
import { parseDuration, parseRetention } from '../../src/common/duration.js';
import { extractGlobalArgs } from '../../src/client/argv.js';

describe('CLI arguments', () => {
  it("accepts the seed's address-first form", () => {
    expect(extractGlobalArgs(['localhost:8080', 'submit', 'batch', 'Mi Trabajo'])).toEqual({
      master: 'localhost:8080',
      json: false,
      rest: ['submit', 'batch', 'Mi Trabajo'],
    });
  });

  it('takes --master and --json before or after the subcommand', () => {
    expect(extractGlobalArgs(['status', 'j1', '--master', 'http://h:1', '--json'])).toEqual({
      master: 'http://h:1',
      json: true,
      rest: ['status', 'j1'],
    });
    expect(extractGlobalArgs(['--master=h:2', 'jobs']).master).toBe('h:2');
  });

  it('takes --tls-ca anywhere, as --master', () => {
    expect(extractGlobalArgs(['worker', '--tls-ca', 'ca.pem', '--tls-cert', 'w.pem'])).toEqual({
      tlsCa: 'ca.pem',
      json: false,
      rest: ['worker', '--tls-cert', 'w.pem'],
    });
    expect(extractGlobalArgs(['--tls-ca=ca.pem', 'h:1', 'jobs'])).toMatchObject({ tlsCa: 'ca.pem', master: 'h:1' });
    expect(() => extractGlobalArgs(['jobs', '--tls-ca'])).toThrow(/--tls-ca needs a file/);
  });

  it('takes --retry-for anywhere, as --master', () => {
    expect(extractGlobalArgs(['jobs', '--retry-for', '5s'])).toEqual({ retryFor: '5s', json: false, rest: ['jobs'] });
    expect(extractGlobalArgs(['--retry-for=250ms', 'h:1', 'status', 'j'])).toMatchObject({
      retryFor: '250ms',
      master: 'h:1',
      rest: ['status', 'j'],
    });
    expect(() => extractGlobalArgs(['jobs', '--retry-for'])).toThrow(/--retry-for needs a duration/);
  });

  it('does not mistake a command for an address', () => {
    expect(extractGlobalArgs(['workers']).rest).toEqual(['workers']);
  });
});

describe('addresses and durations', () => {
  it('adds http:// when it is missing and drops trailing slashes', () => {
    expect(normalizeUrl('127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
    expect(normalizeUrl('http://a:1')).toBe('http://a:1');
  });

  it('adds https:// instead where TLS is on, and keeps a scheme that is given', () => {
    expect(normalizeUrl('127.0.0.1:8080', 'https')).toBe('https://127.0.0.1:8080');
    expect(normalizeUrl('http://a:1', 'https')).toBe('http://a:1');
  });

  it("derives the seed's node id from the last two octets", () => {
    expect(nodeIdFromIpv4('10.0.2.3')).toBe(515);
    expect(nodeIdFromIpv4('127.0.0.2')).toBe(2);
    expect(nodeIdFromIpv4('localhost')).toBeUndefined();
    expect(nodeIdFromIpv4('1.2.3.256')).toBeUndefined();
  });

  it('parses 30s, 5m, 1h, 7d', () => {
    expect(['30s', '5m', '1h', '7d', '250ms'].map(parseDuration)).toEqual([
      30_000, 300_000, 3_600_000, 604_800_000, 250,
    ]);
    expect(() => parseDuration('soon')).toThrow(/30s, 5m, 1h or 7d/);
  });

  it('refuses a duration that rounds to nothing: a retention of 0.4ms is not "keep for ever"', () => {
    expect(() => parseDuration('0.4ms')).toThrow("'0.4ms' must be a positive duration of at least 1ms");
    expect(() => parseRetention('0.0001s')).toThrow(/at least 1ms/);
    expect(parseRetention('0')).toBe(0);
    expect(parseDuration('0.6ms')).toBe(1);
  });
});

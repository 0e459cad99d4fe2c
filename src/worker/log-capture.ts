// What a task prints, cut into lines and held (bounded) until its report goes to the masters.
// Pure: the executor pool feeds it what the executor process sent, with the time it was written.
import {
  LOG_CAP_BYTES,
  LOG_CUT_MARKER,
  LOG_LINE_OVERHEAD,
  MAX_LOG_LINE_CHARS,
  type LogLine,
  type LogStream,
} from '../protocol/task-log.js';

/**
 * One attempt's output. Writes are split into lines per stream (a line written in pieces is
 * one line, timed by its first piece); once the lines reach LOG_CAP_BYTES (text and a small
 * overhead per line) the rest is dropped and LOG_CUT_MARKER ends the log. Memory held is at
 * most the cap, one partial line per stream, and the marker — whatever the task prints.
 */
export class LogCapture {
  private readonly kept: LogLine[] = [];
  private bytes = 0;
  private cutAt: number | undefined;
  private readonly partial: Record<LogStream, { text: string; at: number } | undefined> = {
    stdout: undefined,
    stderr: undefined,
  };

  /** Whether the cap was reached (more writes are dropped). */
  get cut(): boolean {
    return this.cutAt !== undefined;
  }

  write(stream: LogStream, text: string, at: number): void {
    if (this.cutAt !== undefined || text.length === 0) return;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      const piece = text.slice(start, nl < 0 ? text.length : nl);
      const p = this.partial[stream];
      const joined = p ? p.text + piece : piece;
      const lineAt = p ? p.at : at;
      if (nl < 0) {
        // A line still open; one longer than a stored line is stored in parts already.
        this.partial[stream] = joined.length ? { text: joined, at: lineAt } : p;
        this.splitLong(stream);
        return;
      }
      this.partial[stream] = undefined;
      this.push(stream, joined, lineAt);
      if (this.cutAt !== undefined) return;
      start = nl + 1;
      if (start >= text.length) return;
    }
  }

  /** Stores the open line's full-length parts, so an endless line is bounded too. */
  private splitLong(stream: LogStream): void {
    let p = this.partial[stream];
    while (p && p.text.length > MAX_LOG_LINE_CHARS && this.cutAt === undefined) {
      this.store(stream, p.text.slice(0, MAX_LOG_LINE_CHARS), p.at);
      p = { text: p.text.slice(MAX_LOG_LINE_CHARS), at: p.at };
      this.partial[stream] = p;
    }
  }

  private push(stream: LogStream, text: string, at: number): void {
    for (let i = 0; i < text.length || i === 0; i += MAX_LOG_LINE_CHARS) {
      this.store(stream, text.slice(i, i + MAX_LOG_LINE_CHARS), at);
      if (this.cutAt !== undefined) return;
    }
  }

  /** The task's process stopped sending (it reached its own budget): the log ends here. */
  cutNow(at: number): void {
    if (this.cutAt !== undefined) return;
    this.closeOpenLines();
    this.cutAt ??= at;
  }

  private store(stream: LogStream, text: string, at: number): void {
    const cost = Buffer.byteLength(text) + LOG_LINE_OVERHEAD;
    if (this.bytes + cost > LOG_CAP_BYTES) {
      this.cutAt = at;
      this.partial.stdout = this.partial.stderr = undefined;
      return;
    }
    this.bytes += cost;
    this.kept.push({ stream, at, text });
  }

  /**
   * Every line so far, the open ones closed, and the marker if the log was cut. Taking them
   * empties the capture (a streaming instance's log is taken again and again).
   */
  take(): LogLine[] {
    this.closeOpenLines();
    const lines = this.kept.splice(0);
    if (this.cutAt !== undefined && !this.markerTaken) {
      this.markerTaken = true;
      lines.push({ stream: 'stderr', at: this.cutAt, text: LOG_CUT_MARKER });
    }
    return lines;
  }

  private markerTaken = false;

  private closeOpenLines(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = this.partial[stream];
      this.partial[stream] = undefined;
      if (p && this.cutAt === undefined) this.push(stream, p.text, p.at);
    }
  }

  /** Nothing to take. */
  get empty(): boolean {
    return (
      this.kept.length === 0 &&
      !this.partial.stdout &&
      !this.partial.stderr &&
      (this.cutAt === undefined || this.markerTaken)
    );
  }
}

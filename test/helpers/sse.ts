/**
 * The `data:` of each server-sent event in `body`, as it arrives (events without data, such
 * as keepalive comments, are skipped). Ends with the stream; a cut stream throws.
 */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      const data = buf
        .slice(0, end)
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5))
        .join('\n');
      buf = buf.slice(end + 2);
      if (data) yield data;
    }
  }
}

/**
 * Options for the WebSocket connections Weir's own processes open to each other. Masking
 * exists to stop a browser's script from poisoning proxy caches (RFC 6455 §10.3); between
 * our processes it only costs an XOR over every byte on both ends, so frames go with the
 * all-zero mask, which `ws` then skips on both sides.
 */
export const INTERNAL_WS_OPTIONS = {
  perMessageDeflate: false,
  generateMask: (mask: Buffer) => void mask.fill(0),
} as const;

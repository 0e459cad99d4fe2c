/**
 * Characters a terminal acts on instead of showing (C0 controls, DEL, C1 controls): a newline
 * forges a table row, an escape clears a screen. One class, so that what a master refuses in a
 * name and what the CLI escapes in what it prints are the same characters.
 */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHAR = /[\u0000-\u001f\u007f-\u009f]/;

/** Every control character of a text, for `replace`. */
export const CONTROL_CHARS = new RegExp(CONTROL_CHAR.source, 'g');

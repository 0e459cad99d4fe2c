// undici for the tasks of a cluster serving TLS, loaded on first use (cluster-fetch.ts). The
// dynamic import names this module, not the package: a bundle splits our own modules with
// their named exports, where it gives a CommonJS package's dynamic import a default alone.
export { Agent, fetch } from 'undici';

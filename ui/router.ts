import { useEffect, useState } from 'preact/hooks';

/** The page's own paths (the master serves the page at each): `/` and `/jobs/ID`. */
export type Route = { page: 'overview' } | { page: 'job'; jobId: string };

export function parseRoute(pathname: string): Route {
  const m = /^\/jobs\/([A-Za-z0-9_-]{1,64})\/?$/.exec(pathname);
  return m ? { page: 'job', jobId: m[1]! } : { page: 'overview' };
}

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const on = () => {
      setRoute(parseRoute(location.pathname));
      scrollTo(0, 0);
    };
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return route;
}

/** Links inside the page move with the history API; a modified click opens a tab as usual. */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/') || a.hasAttribute('download')) return;
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}
